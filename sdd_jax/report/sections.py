"""The report's evaluation sections (Tables 2, 5, 6, 7: Base vs +SD-Dropout per data set and
method) and ablation sections (Tables 9-14: a pivot by the field that varies)."""
from typing import Callable, List, Sequence, Tuple

from sdd_jax.metrics import corruption as corruption_metrics
from sdd_jax.report import calibration as report_calibration
from sdd_jax.report.runs import (FEATURE_DROPOUT, PLUS_SDD, Group, Run, at_reference, label,
                                 metric_keys, order_key)
from sdd_jax.report.tables import base_vs_sdd, in_main_tables, pair_grid, pivot

OOD_METRICS = (('FPR95 ↓', 'fpr95'), ('Detection error ↓', 'detection_error'),
               ('AUROC ↑', 'auroc'), ('AUPR in ↑', 'aupr_in'), ('AUPR out ↑', 'aupr_out'))
# Table 6's rows: (group, short name) per corruption, benchmark order, then the 4 extra ones.
CORRUPTION_LABELS = dict(zip(corruption_metrics.ALL_CORRUPTIONS, (
    'Noise: Gauss.', 'Noise: Shot', 'Noise: Impulse', 'Blur: Defocus', 'Blur: Glass',
    'Blur: Motion', 'Blur: Zoom', 'Weather: Snow', 'Weather: Frost', 'Weather: Fog',
    'Weather: Bright', 'Digital: Contrast', 'Digital: Elastic', 'Digital: Pixel', 'Digital: JPEG',
    'Extra: Speckle', 'Extra: Gauss. blur', 'Extra: Spatter', 'Extra: Saturate')))
CORRUPTION_ROWS = tuple((label_, [name]) for name, label_ in CORRUPTION_LABELS.items()) + (
    ('mCA-15', ['mca15']), ('mCA-19', ['mca19']), ('Clean', ['clean']))


def _sdd_alone(free: Sequence[str]) -> Callable[[Group], bool]:
  return lambda g: (g.field('method') == 'ce' and g.field('sd_dropout') == PLUS_SDD
                    and at_reference(g, free))


def _ce_family(free: Sequence[str]) -> Callable[[Group], bool]:
  return lambda g: g.field('method') == 'ce' and at_reference(g, free)


def _with(field: str) -> Callable[[Group], bool]:
  return lambda g: g.field(field) is not None and at_reference(g, [])


def _varies(*fields: str) -> Callable[[Sequence[Group]], bool]:
  return lambda kept: all(len({repr(g.field(f)) for g in kept if g.field(f) is not None}) > 1
                          for f in fields)


# (title, row field, column field or None, which groups, whether to show the table)
ABLATIONS = (
    ('Table 9: KL direction of SD-Dropout', 'dataset', 'kl_direction',
     lambda g: g.field('kl_direction') is not None and at_reference(
         g, ['methods.sd_dropout.direction']), _varies('methods.sd_dropout.direction')),
    ('Table 10: backbone', 'model.name', 'sd_dropout', _ce_family([]), _varies('model.name')),
    ('Table 11: standard dropout vs SD-Dropout (†: dropout with as many trained masks per step '
     'as SD-Dropout)', 'dataset', 'dropout', _with('dropout'),
     lambda kept: any(g.field(f'methods.{FEATURE_DROPOUT}') for g in kept)),
    ('Table 12: dropout position (4 = after the last stage)', 'methods.sd_dropout.position',
     'dataset', _sdd_alone(['methods.sd_dropout.position']),
     _varies('methods.sd_dropout.position')),
    ('Table 13: hidden layers of the head', 'model.head_hidden', 'sd_dropout',
     _ce_family(['model.head_hidden']), _varies('model.head_hidden')),
    ('Table 14: weight λ (rows) × rate β (columns)', 'methods.sd_dropout.weight',
     'methods.sd_dropout.rate', _sdd_alone(['methods.sd_dropout.rate']),
     _varies('methods.sd_dropout.weight', 'methods.sd_dropout.rate')),
)


def _pair_name(dataset: str, method: str) -> str:
  return f'{label("dataset", dataset)}, {label("method", method)}'


def evaluation_sections(groups: Sequence[Group], runs: Sequence[Run]) -> List[Tuple[str, str]]:
  """[(heading, table)] for calibration (`calibration.py`), FGSM, corruption and ODIN/MSP,
  where present."""
  sections = report_calibration.sections(groups, runs)
  fgsm = [k for k in metric_keys(runs, 'fgsm/') if k not in ('fgsm/count', 'fgsm/nonfinite')]
  if fgsm:
    sections.append(('FGSM top-1 % (Table 5)',
                     base_vs_sdd(groups, [(k[len('fgsm/'):], k) for k in fgsm])))
  corruption = [k for k in ('corruption/clean', 'corruption/mca15', 'corruption/mca19')
                if metric_keys(runs, k)]
  if corruption:
    sections.append(('CIFAR-100-C mean corruption accuracy % (Table 6)',
                     base_vs_sdd(groups, [(k[len('corruption/'):], k) for k in corruption])))
  pairs = sorted({(g.field('dataset'), g.field('method')) for g in groups if in_main_tables(g)},
                 key=lambda p: (order_key('dataset', p[0]), order_key('method', p[1])))
  for dataset, method in pairs if corruption else ():
    table = pair_grid(groups, dataset, method, 'Corruption', CORRUPTION_ROWS,
                      [('top-1 %', 'corruption/{}')])
    if table:
      sections.append((f'Table 6: accuracy per corruption (mean over severities), '
                       f'{_pair_name(dataset, method)}', table))
  for detector in ('odin', 'msp'):
    sets = sorted({k.split('/')[1] for k in metric_keys(runs, f'{detector}/')
                   if k.count('/') == 2})
    rows = [(ood_set, [ood_set]) for ood_set in sets] + ([('Average', sets)] if len(sets) > 1
                                                         else [])
    for dataset, method in pairs if sets else ():
      table = pair_grid(groups, dataset, method, 'OOD set', rows,
                        [(name, f'{detector}/{{}}/{key}') for name, key in OOD_METRICS])
      if table:
        sections.append((f'Table 7: {detector.upper()} out-of-distribution detection %, '
                         f'{_pair_name(dataset, method)} in-distribution', table))
  return sections


def ablation_sections(groups: Sequence[Group], metric: str = 'test/top1') -> List[Tuple[str, str]]:
  """[(heading, pivot)] for every ablation whose fields vary among its groups."""
  sections = []
  for title, row, col, keep, shown in ABLATIONS:
    kept = [g for g in groups if keep(g)]
    if shown(kept):
      sections.append((f'{title}: `{metric}`', pivot(kept, row, col, metric, title=row)))
  return sections
