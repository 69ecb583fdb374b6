"""`corruption`: accuracy under CIFAR-C corruptions, mCA-15 and mCA-19 (docs/evaluation.md §4).

acc(c, s) = top-1 on the n images of corruption c at severity s, preprocessed exactly like the
clean test split. mCA-15 = mean of acc over the 15 benchmark corruptions × 5 severities (augmix
`test_c`); mCA-19 = the same over all 19 files (what the SD-Dropout authors' `eval_cifiar_C.py`
prints; compare with the paper using mCA-19). Averages come from `corruption_metrics.corruption_summary`.

Section: `dataset` ('cifar100_c': the manual CIFAR-100-C folder at `path`, read by
`data/corrupted.py`; 'cifar10_corrupted': tfds configs `<corruption>_<severity>` in `data_dir`),
`corruptions` (default all 19), `check_labels` (CIFAR-100-C: its labels must equal the clean eval
labels in canonical order). `corruption/nonfinite` counts the images (clean and corrupted) whose
logits held a NaN or ±inf; they count as wrong (per file in results.json). A missing folder, file or tfds config raises `Skipped` naming what to
download and where to put it.

Keys (top-1 %): `corruption/clean`, `corruption/mca15`, `corruption/mca19`,
`corruption/<corruption>` (mean over severities, one per corruption),
`corruption/severity_<s>` (mean over the benchmark corruptions present), `corruption/count`
(images per severity block). The full acc(c, s) table is in `evals/corruption/results.json`.
"""
from sdd_jax.metrics import corruption as corruption_metrics
from sdd_jax.data import canonical
from sdd_jax.data import corrupted
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import results as results_lib

DATASETS = ('cifar100_c', 'cifar10_corrupted')
LABEL = ('Top-1 accuracy on CIFAR-C, images preprocessed like the clean test split. mCA-15: '
         'mean over the 15 benchmark corruptions x 5 severities (augmix test_c); mCA-19: mean '
         'over all 19 files (the SD-Dropout authors\' eval_cifiar_C.py; the paper comparison '
         'uses mCA-19, the paper text does not say which). Per-severity means are over the '
         'benchmark corruptions present.')


def _top1(ctx, predict, source=None):
  """(top-1 %, n, examples with non-finite logits) of `source` (default: the clean split)."""
  total = accuracy.accumulate_sums(ctx, predict, source)
  return (100 * float(total['top1']) / float(total['count']), int(round(float(total['count']))),
          int(round(float(total['nonfinite']))))


def _names(corruptions):
  if isinstance(corruptions, str):
    corruptions = corruptions.split(',')
  names = tuple(c.strip() for c in corruptions if c.strip())
  unknown = [c for c in names if c not in corruption_metrics.ALL_CORRUPTIONS]
  if unknown or not names:
    raise ValueError(f'config.evals.corruption.corruptions: unknown {unknown or "(empty)"}; '
                     f'known: {", ".join(corruption_metrics.ALL_CORRUPTIONS)}')
  return names


class Corruption(base.Evaluator):
  name = 'corruption'
  defaults = {'every_epochs': 0, 'dataset': 'cifar100_c', 'path': '', 'data_dir': '',
              'corruptions': corruption_metrics.ALL_CORRUPTIONS, 'check_labels': True}

  @classmethod
  def check_section(cls, section):
    _names(section['corruptions'])
    if section['dataset'] not in DATASETS:
      raise ValueError(f'config.evals.corruption.dataset: must be one of {DATASETS}, got '
                       f'{section["dataset"]!r}')

  def _open(self, ctx, names):
    """-> (severity_source(corruption, severity), a description of the data)."""
    dataset = self.section['dataset']
    if dataset == 'cifar100_c':
      try:
        folder = corrupted.CorruptedFolder(self.section['path'], names,
                                           ctx.data_config.num_classes)
      except corrupted.MissingDataError as e:
        raise base.Skipped(str(e)) from None
      if self.section['check_labels']:
        order = canonical.canonical_order(ctx.data_config, ctx.data_config.eval_split,
                                          ctx.source)
        folder.check_clean_labels(ctx.source.labels()[order])
      return folder.severity_source, f'CIFAR-100-C folder {folder.path}'
    if dataset == 'cifar10_corrupted':
      data_dir = self.section['data_dir'] or ctx.data_config.data_dir or ''
      missing = corrupted.missing_tfds_configs(names, data_dir)
      if missing:
        raise base.Skipped(corrupted.tfds_missing_message(missing, data_dir))
      return (lambda c, s: corrupted.tfds_severity_source(c, s, data_dir),
              f'tfds cifar10_corrupted in {data_dir or "the default data_dir"}')
    raise ValueError(f'config.evals.corruption.dataset: must be one of {DATASETS}, got '
                     f'{dataset!r}')

  def __call__(self, ctx, predict):
    names = _names(self.section['corruptions'])
    severity_source, where = self._open(ctx, names)
    clean, _, nonfinite = _top1(ctx, predict)
    acc, counts, bad = {}, set(), {'clean': nonfinite}
    for name in names:
      acc[name] = []
      for severity in range(1, corrupted.NUM_SEVERITIES + 1):
        top1, count, nonfinite = _top1(ctx, predict, severity_source(name, severity))
        acc[name].append(top1)
        counts.add(count)
        if nonfinite:
          bad[f'{name}_{severity}'] = nonfinite
    summary = corruption_metrics.corruption_summary(acc)
    out = {'corruption/clean': clean, 'corruption/mca19': summary['mca19']}
    if summary['num_benchmark']:
      out['corruption/mca15'] = summary['mca15']
      out.update({f'corruption/severity_{s + 1}': v
                  for s, v in enumerate(summary['per_severity'])})
    out.update({f'corruption/{name}': v for name, v in summary['per_corruption'].items()})
    out['corruption/count'] = float(min(counts))
    out['corruption/nonfinite'] = float(sum(bad.values()))
    benchmark = set(corruption_metrics.BENCHMARK_CORRUPTIONS)
    rows = [(name, 'benchmark' if name in benchmark else 'extra', *acc[name],
             summary['per_corruption'][name]) for name in corruption_metrics.ALL_CORRUPTIONS if name in acc]
    rows.append(('mean (benchmark: mCA-15)', '', *summary['per_severity'], summary['mca15']))
    rows.append(('mean (all: mCA-19)', '', *summary['per_severity_all'], summary['mca19']))
    results_lib.write_results(
        ctx.workdir, self.key, data_config=ctx.data_config, metrics=out,
        label=f'{LABEL} Data: {where}; n = {min(counts)} images per severity.',
        details={'dataset': self.section['dataset'], 'source': where,
                 'n_per_severity': sorted(counts), 'clean_top1': clean,
                 'accuracy': acc, 'nonfinite': bad, **summary},
        tables=[results_lib.table(
            f'Top-1 % per corruption and severity (clean: {clean:.2f}%, '
            f'{summary["num_benchmark"]} benchmark + '
            f'{summary["num_all"] - summary["num_benchmark"]} extra corruptions)',
            ('corruption', 'group', 's1', 's2', 's3', 's4', 's5', 'mean'), rows)])
    return out
