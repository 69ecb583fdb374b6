"""The report's calibration tables: Table 2 (ECE and NLL, Base vs +SD-Dropout), the selective
prediction and proper scores of the calibration evaluator, and the comparison against
temperature scaling, where "CE + TS" and SD-Dropout (with and without TS) stand side by side.

Each table shows only where some run has its keys, and each column only where some run has
its key, so workdirs written before a metric existed still report (their cells: –). Keys
(`docs/evaluation.md` has the formulas): `calibration/ece_adaptive`, `calibration/ece_classwise`
(%), `calibration/brier` (sum over classes, mean over examples, in [0, 2]), `calibration/aurc`,
`calibration/eaurc` (×1000, as PS-KD prints them); the `temperature` evaluator's
`temperature/{ece,nll}_{before,after}` and `temperature/t_star`, and how T* was fitted
(`details.fit` of `evals/temperature/results.json`: validation, cross_fit or holdout).
"""
from typing import List, Sequence, Tuple

from sdd_jax.report.cells import embolden, lower_is_better, markdown
from sdd_jax.report.runs import BASE, PLUS_SDD, Group, Run, label, metric_keys
from sdd_jax.report.tables import base_sdd_cells, base_vs_sdd, cell

SCORES = (('adaptive ECE %', 'calibration/ece_adaptive'),
          ('class-wise ECE %', 'calibration/ece_classwise'), ('Brier', 'calibration/brier'),
          ('AURC ×1000', 'calibration/aurc'), ('E-AURC ×1000', 'calibration/eaurc'))
# (name, key before scaling, key after); T* has no better direction and is never bold.
SCALED = (('ECE %', 'temperature/ece_before', 'temperature/ece_after'),
          ('NLL', 'temperature/nll_before', 'temperature/nll_after'))
T_STAR = 'temperature/t_star'
TS = ' + TS'
TS_NOTE = ('TS: temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural '
           'Networks"), one T* per run fitted by NLL; in the Cross-Entropy row, "Base + TS" is '
           'CE + TS and "+SD-Dropout" is SD-Dropout alone.')


def scaled_table(groups: Sequence[Group], runs: Sequence[Run]) -> str:
  """Rows (data set, method); per metric of `SCALED` four columns, Base, Base + TS,
  +SD-Dropout, +SD-Dropout + TS (bold: the best of the four, `cells.embolden`), then T* of
  Base and +SD-Dropout. '' when no run has `temperature/ece_after`."""
  if not metric_keys(runs, 'temperature/ece_after'):
    return ''
  by, pairs = base_sdd_cells(groups)
  columns = ['Data set', 'Method']
  for name, _, _ in SCALED:
    columns += [f'{name} {BASE}', f'{name} {BASE}{TS}', f'{name} {PLUS_SDD}',
                f'{name} {PLUS_SDD}{TS}']
  columns += [f'T* {BASE}', f'T* {PLUS_SDD}']
  rows = []
  for d, m in pairs:
    base, plus = by.get((d, m, BASE), []), by.get((d, m, PLUS_SDD), [])
    row = [label('dataset', d), label('method', m)]
    for _, before, after in SCALED:
      four = [[cell(base, before), cell(base, after), cell(plus, before, True),
               cell(plus, after, True)]]
      embolden(four, [(0, c) for c in range(4)], lower_is_better(after))
      row += four[0]
    row += [cell(base, T_STAR), cell(plus, T_STAR, True)]
    if any(c.values for c in row[2:]):
      rows.append(row)
  return markdown(columns, rows) if rows else ''


def fits(runs: Sequence[Run]) -> List[str]:
  """How T* was fitted, over the runs: the sorted distinct `details.fit` values."""
  return sorted({str(((r.evals.get('temperature') or {}).get('details') or {}).get('fit'))
                 for r in runs if 'temperature' in r.evals} - {'None'})


def sections(groups: Sequence[Group], runs: Sequence[Run]) -> List[Tuple[str, str]]:
  """[(heading, table)]: Table 2, the scores of `SCORES` present, temperature scaling."""
  out = []
  prefix = 'calibration' if metric_keys(runs, 'calibration/ece') else 'test'
  table2 = base_vs_sdd(groups, [('ECE %', f'{prefix}/ece'), ('NLL', f'{prefix}/nll')])
  if table2:
    out.append((f'Calibration (Table 2; `{prefix}/ece`, `{prefix}/nll`)', table2))
  present = [(name, key) for name, key in SCORES if metric_keys(runs, key)]
  scores = base_vs_sdd(groups, present) if present else ''
  if scores:
    out.append(('Selective prediction and proper scores (' + ', '.join(
        f'`{key}`' for _, key in present) + ')', scores))
  scaled = scaled_table(groups, runs)
  if scaled:
    fitted = ', '.join(fits(runs)) or 'not recorded'
    out.append((f'Calibration after temperature scaling (`temperature/...`; T* fitted on: '
                f'{fitted})', f'{scaled}\n\n{TS_NOTE}'))
  return out
