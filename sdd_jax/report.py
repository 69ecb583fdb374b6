r"""Paper-style tables over many runs: `python -m sdd_jax.report DIR... [--out report.md]`.

Every workdir (a folder holding `config.json`) at or below each DIR is read with its
`summary.json` and `evals/<name>/results.json`; runs whose configs differ only by `seed` are one
group (`report_runs.py`), and a cell is the mean ± sample std (ddof=1) over its seeds, the best
of each comparison in bold (`report_tables.py`).

Sections (each only where some run has its numbers):
- Table 1: top-1 of each method (CE = no method besides `sd_dropout`) per data set, Base and
  +SD-Dropout with the gain, in the paper's order (CE, CS-KD, DDGSD, BYOT, DML, LS, then the
  others); DML's second network and ensemble in a table of their own; Table 3 (ImageNet
  Acc@1 / Acc@5 per method).
- Evaluations per data set and method, Base vs +SD-Dropout: calibration (Table 2), FGSM
  (Table 5), CIFAR-100-C mCA (Table 6), and per data set and method Table 6's accuracy per
  corruption and Table 7's ODIN / MSP metrics per OOD set with their average.
- Ablations wherever the field varies: KL direction with its Base (Table 9), backbone
  (Table 10), standard dropout (Table 11), dropout position (Table 12), head hidden layers
  (Table 13), weight × rate (Table 14); each is a `pivot` by one or two fields with the other
  ablated fields at the paper's values.
- The sensitivity study: metrics per pooled dimension D and weight (`report_sensitivity.py`).
- The KL-direction probe (Table 8, Figure 4), links to the reliability diagrams, and the
  workdirs behind every group.

Tables 1-7 use only runs at the paper's settings (`report_runs.REFERENCE`: both directions,
position 4, rate 0.5, no hidden head layer) and leave out Table 11's standard-dropout
baselines. Written to `--out` (default: `report.md` in the current folder); links are relative
to it.

A run whose files cannot be read (`report_files.py`: a truncated or garbage config.json,
summary.json or results.json) is left out with one line on stderr naming it, the file and the
problem; a bad line of metrics.jsonl skips only that line (one stderr line per file). Exit
status: 0 when some run was tabulated (even with runs left out), 1 when none was (no workdir,
or none readable: the report is not written).
"""
import argparse
import json
import os
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from sdd_jax import metrics
from sdd_jax import report_probe
from sdd_jax import report_sensitivity
from sdd_jax import workdir_path
from sdd_jax.report_runs import (  # pylint: disable=unused-import  (the API lives here too)
    BASE, FEATURE_DROPOUT, PLUS_SDD, REFERENCE, Group, Run, at_reference, group_seeds, label,
    load_runs, metric_keys, order_key)
from sdd_jax.report_tables import (  # pylint: disable=unused-import
    STD_NOTE, base_vs_sdd, dml_table, in_main_tables, pair_grid, pivot, table1, table3)

OOD_METRICS = (('FPR95 ↓', 'fpr95'), ('Detection error ↓', 'detection_error'),
               ('AUROC ↑', 'auroc'), ('AUPR in ↑', 'aupr_in'), ('AUPR out ↑', 'aupr_out'))
# Table 6's rows: (group, short name) per corruption, benchmark order, then the 4 extra ones.
CORRUPTION_LABELS = dict(zip(metrics.ALL_CORRUPTIONS, (
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
  """[(heading, table)] for calibration, FGSM, corruption and ODIN/MSP, where present."""
  sections = []
  prefix = 'calibration' if metric_keys(runs, 'calibration/ece') else 'test'
  calibration = base_vs_sdd(groups, [('ECE %', f'{prefix}/ece'), ('NLL', f'{prefix}/nll')])
  if calibration:
    sections.append((f'Calibration (Table 2; `{prefix}/ece`, `{prefix}/nll`)', calibration))
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


def _reference_text() -> str:
  return ', '.join(f'{k}={json.dumps(v)}' for k, v in REFERENCE.items())


def _rel(path: str, out_dir: str) -> str:
  return workdir_path.relative_link(path, out_dir)


def _group_name(g: Group) -> str:
  return (f'{label("dataset", g.field("dataset"))}, {label("method", g.field("method"))} '
          f'{g.field("sd_dropout")}')


def reliability_links(groups: Sequence[Group], out_dir: str) -> str:
  lines = []
  for g in groups:
    for run in g.runs:
      record = run.evals.get('calibration') or {}
      for plot in record.get('plots') or ():
        path = workdir_path.join(run.workdir, 'evals', 'calibration', plot)
        lines.append(f'- [{_group_name(g)}, seed {run.config.get("seed")}]'
                     f'({_rel(path, out_dir)})')
  return '\n'.join(lines)


def _flat(config, prefix=''):
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    elif key != 'seed' or prefix:
      out[prefix + key] = json.dumps(value)
  return out


def runs_list(groups: Sequence[Group], out_dir: str) -> str:
  """One line per group: its name, the fields that set it apart from groups of the same name,
  and links to its workdirs."""
  flats = [_flat(g.runs[0].config) for g in groups]
  lines = []
  for g, flat in zip(groups, flats):
    twins = [f for h, f in zip(groups, flats) if _group_name(h) == _group_name(g)]
    differ = sorted(k for k in set().union(*twins) if len({t.get(k) for t in twins}) > 1)
    extra = ' (' + ', '.join(f'{k}={flat.get(k, "–")}' for k in differ) + ')' if differ else ''
    lines.append(f'- {_group_name(g)}{extra}, n={len(g.runs)}: ' + ', '.join(
        f'[seed {r.config.get("seed")}]({_rel(r.workdir, out_dir)})' for r in g.runs))
  return '\n'.join(lines)


def render(runs: Sequence[Run], out_dir: str = '.') -> str:
  """The whole report as markdown; links relative to `out_dir`."""
  groups = group_seeds(runs)
  parts = ['# SD-Dropout results', '',
           f'{len(runs)} runs in {len(groups)} groups; cells: {STD_NOTE}; – : no run.', '',
           '## Table 1: top-1 accuracy % (`test/top1`)', '', table1(groups) if any(
               in_main_tables(g) for g in groups) else
           f'No run at the paper\'s settings ({_reference_text()}).', '']
  dml = dml_table(groups)
  if dml:
    parts += ['### DML: both networks and their ensemble, top-1 % (Table 1 shows network 0)', '',
              dml, '']
  imagenet = table3(groups)
  if imagenet:
    parts += ['## Table 3: ImageNet top-1 / top-5 accuracy % (`test/top1`, `test/top5`)', '',
              imagenet, '']
  evaluations = evaluation_sections(groups, runs)
  if evaluations:
    parts += ['## Evaluations: Base vs +SD-Dropout', '']
    for heading, table in evaluations:
      parts += [f'### {heading}', '', table, '']
  ablations = ablation_sections(groups)
  if ablations:
    parts += ['## Ablations', '']
    for heading, table in ablations:
      parts += [f'### {heading}', '', table, '']
  parts += report_probe.section(groups, _group_name, out_dir)
  parts += report_sensitivity.section(groups, out_dir)
  links = reliability_links(groups, out_dir)
  if links:
    parts += ['## Reliability diagrams', '', links, '']
  parts += ['## Runs', '', runs_list(groups, out_dir), '']
  return '\n'.join(parts)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.report',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('dirs', nargs='+', help='workdirs, or folders with workdirs below them')
  parser.add_argument('--out', default='report.md', help='the markdown file to write')
  args = parser.parse_args(argv)
  problems: List[str] = []
  runs = load_runs(args.dirs, problems)
  for problem in problems:
    print(problem, file=sys.stderr)
  if not runs:
    skipped = sum(p.startswith('skipped run ') for p in problems)
    print(f'error: no {"readable run" if skipped else "workdir (a folder with config.json)"} '
          f'in {", ".join(args.dirs)}' + (f' ({skipped} unreadable, named above)' if skipped
                                          else ''), file=sys.stderr)
    return 1
  out = workdir_path.path(args.out)  # a local file or a gs:// object
  out_dir = os.fspath(out.parent)
  text = render(runs, out_dir)
  out.parent.mkdir(parents=True, exist_ok=True)
  workdir_path.write_text(out, text)
  left_out = sum(p.startswith('skipped run ') for p in problems)
  print(f'{args.out}: {len(runs)} runs' + (f' ({left_out} unreadable left out)' if left_out
                                           else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main())
