"""The paper-style markdown tables of the report (cells: `cells.py`; runs and groups:
`runs.py`). Rows and columns follow the paper's order where it has one. The comparisons whose
best cell may be bold (`cells.embolden`: only where Welch's t-test finds it better than each
other cell, p < 0.05): each Base / +SD-Dropout pair in Tables 1-7, each row of a many-column
ablation, the column of a one-column one. A +SD-Dropout cell of Tables 1-7 also carries its gain
over Base, `(+x.xx)`, the difference of the means, and SD-Dropout's weight in its runs, `(λ=w)`.
"""
import collections
import json
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from sdd_jax import methods as methods_lib
from sdd_jax.report.cells import Cell, embolden, lower_is_better, markdown, with_gain
from sdd_jax.report.runs import (BASE, BASELINE_METHODS, PLUS_SDD, SDD, Group, at_reference,
                                 label, order_key)


def sdd_weight(g: Group) -> Optional[float]:
  """SD-Dropout's weight λ in the group's runs (`methods.sd_dropout.weight`; a config.json that
  does not set it had the method's default), None without SD-Dropout."""
  if g.field('sd_dropout') != PLUS_SDD:
    return None
  weight = g.field(f'methods.{SDD}.weight')
  return float(methods_lib.defaults(SDD)['weight'] if weight is None else weight)


def weight_note(g: Optional[Group]) -> str:
  """'(λ=0.1)' for a group with SD-Dropout, '' otherwise."""
  weight = None if g is None else sdd_weight(g)
  return '' if weight is None else f'(λ={weight:g})'


def chosen(groups: Sequence[Group], key: str) -> Optional[Group]:
  """The first group (of the most runs) that has `key`, or None."""
  with_key = [g for g in groups if g.values(key)]
  return max(with_key, key=lambda g: len(g.values(key))) if with_key else None


def cell(groups: Sequence[Group], key: str, weighted: bool = False) -> Cell:
  """The values of `chosen(groups, key)`; `weighted`: noted with its SD-Dropout weight."""
  g = chosen(groups, key)
  if g is None:
    return Cell(())
  return Cell(tuple(g.values(key)), note=weight_note(g) if weighted else '')


WEIGHT_NOTE = ('(λ=w): SD-Dropout\'s weight in the runs of that cell (`methods.sd_dropout.weight` '
               'of their config.json); the paper uses 1 for SD-Dropout alone (row '
               'Cross-Entropy) and 0.1 beside another method.')


# --- tables -------------------------------------------------------------------------------

def _ambiguity(cells: Dict[Tuple, List[Group]]) -> List[str]:
  notes = []
  for where, groups in cells.items():
    if len(groups) > 1:
      notes.append(f'- {" / ".join(map(str, where))}: {len(groups)} configurations (shown: the '
                   'one with most seeds): ' + ', '.join(g.runs[0].workdir for g in groups))
  return notes


def _select(groups: Sequence[Group], row_field: str, col_field: Optional[str],
            keep: Callable[[Group], bool] = lambda g: True) -> Dict[Tuple, List[Group]]:
  cells = collections.defaultdict(list)
  for g in groups:
    row = g.field(row_field)
    col = g.field(col_field) if col_field else ''
    if row is not None and col is not None and keep(g):
      cells[(json.dumps(row), json.dumps(col))].append(g)
  return cells


def _values(groups, field):
  seen = {}
  for g in groups:
    v = g.field(field)
    if v is not None:
      seen[json.dumps(v)] = v
  return sorted(seen.values(), key=lambda v: order_key(field, v))


def pivot(groups: Sequence[Group], row_field: str, col_field: Optional[str], metric: str,
          keep: Callable[[Group], bool] = lambda g: True, title: str = '') -> str:
  """A table of `metric`: one row per value of `row_field`, one column per value of
  `col_field` (or one column); fields may be dotted config fields or pseudo fields
  (`report_runs.Run.field`). Groups failing `keep` are left out; a cell with several groups
  shows the one with most seeds and gets a footnote. Bold: the best of each row (of the column
  when there is one)."""
  cells = _select(groups, row_field, col_field, keep)
  rows_v = _values([g for gs in cells.values() for g in gs], row_field)
  cols_v = _values([g for gs in cells.values() for g in gs], col_field) if col_field else ['']
  columns = [title or row_field] + ([label(col_field, c) for c in cols_v] if col_field
                                    else [metric])
  rows = [[label(row_field, r)] + [cell(cells.get((json.dumps(r), json.dumps(c)), []), metric)
                                   for c in cols_v] for r in rows_v]
  lower = lower_is_better(metric)
  if len(cols_v) > 1:
    for r in range(len(rows)):
      embolden(rows, [(r, c) for c in range(1, len(cols_v) + 1)], lower)
  else:
    embolden(rows, [(r, 1) for r in range(len(rows))], lower)
  return '\n'.join([markdown(columns, rows)] + _ambiguity(
      {(label(row_field, json.loads(r)), label(col_field, json.loads(c)) if col_field else ''): gs
       for (r, c), gs in sorted(cells.items())}))


def in_main_tables(g: Group) -> bool:
  """Tables 1-7: the paper's settings, self-KD methods only (not Table 11's baselines)."""
  return at_reference(g, ()) and not set(str(g.field('method')).split('+')) & set(
      BASELINE_METHODS)


def _pair(base: Cell, plus: Cell, lower: bool) -> List[Cell]:
  """[base, plus with its gain], the better one bold."""
  pair = [[base, with_gain(base, plus)]]
  embolden(pair, [(0, 0), (0, 1)], lower)
  return pair[0]


def table1(groups: Sequence[Group], metric: str = 'test/top1') -> str:
  """Methods × (data set × {Base, +SD-Dropout}), the paper's settings only."""
  cells = collections.defaultdict(list)
  for g in groups:
    if in_main_tables(g):
      cells[(g.field('method'), g.field('dataset'), g.field('sd_dropout'))].append(g)
  methods = sorted({m for m, _, _ in cells}, key=lambda m: order_key('method', m))
  datasets = sorted({d for _, d, _ in cells}, key=lambda d: order_key('dataset', d))
  columns = ['Method'] + [f'{label("dataset", d)} {s}' for d in datasets for s in (BASE, PLUS_SDD)]
  rows = [[label('method', m)] + [c for d in datasets for c in _pair(
      cell(cells.get((m, d, BASE), []), metric), cell(cells.get((m, d, PLUS_SDD), []), metric,
                                                        weighted=True),
      lower_is_better(metric))] for m in methods]
  return '\n'.join([markdown(columns, rows)] + _ambiguity(
      {(label('method', m), label('dataset', d), s): gs
       for (m, d, s), gs in sorted(cells.items())}))


def base_sdd_cells(groups: Sequence[Group]):
  """The main tables' groups by (data set, method, Base or +SD-Dropout), and the (data set,
  method) rows in table order."""
  cells = collections.defaultdict(list)
  for g in groups:
    if in_main_tables(g):
      cells[(g.field('dataset'), g.field('method'), g.field('sd_dropout'))].append(g)
  pairs = sorted({(d, m) for d, m, _ in cells},
                 key=lambda p: (order_key('dataset', p[0]), order_key('method', p[1])))
  return cells, pairs


def base_vs_sdd(groups: Sequence[Group], metrics: Sequence[Tuple[str, str]]) -> str:
  """Rows (data set, method); per metric a Base and a +SD-Dropout column."""
  cells, pairs = base_sdd_cells(groups)
  columns = ['Data set', 'Method'] + [f'{name} {s}' for name, _ in metrics
                                      for s in (BASE, PLUS_SDD)]
  rows = [[label('dataset', d), label('method', m)] + [
      c for _, key in metrics for c in _pair(cell(cells.get((d, m, BASE), []), key),
                                             cell(cells.get((d, m, PLUS_SDD), []), key, True),
                                             lower_is_better(key))] for d, m in pairs]
  rows = [r for r in rows if any(c.values for c in r[2:])]
  return markdown(columns, rows) if rows else ''


DML_COLUMNS = (('Network 0', 'test/top1'), ('Network 1', 'dml/net1/top1'),
               ('Ensemble', 'dml/ensemble/top1'))


def dml_table(groups: Sequence[Group]) -> str:
  """DML's two networks and their ensemble (top-1), Base and +SD-Dropout, per data set; the
  best of each row bold. Empty when no DML run logged its second network."""
  cells = collections.defaultdict(list)
  for g in groups:
    if in_main_tables(g) and g.field('method') == 'dml' and g.values('dml/net1/top1'):
      cells[(g.field('dataset'), g.field('sd_dropout'))].append(g)
  keys = sorted(cells, key=lambda k: (order_key('dataset', k[0]), order_key('sd_dropout', k[1])))
  rows = [[label('dataset', d), f'{s} {weight_note(cells[(d, s)][0])}'.strip()] + [
      cell(cells[(d, s)], key) for _, key in DML_COLUMNS]
          for d, s in keys]
  for r in range(len(rows)):
    embolden(rows, [(r, c) for c in range(2, 2 + len(DML_COLUMNS))])
  return markdown(['Data set', 'DML'] + [name for name, _ in DML_COLUMNS], rows) if rows else ''


def _mean_cell(groups: Sequence[Group], keys: Sequence[str]) -> Cell:
  """Per run the mean of `keys` (all present), over the seeds of the group with most such runs."""
  best: Tuple[float, ...] = ()
  for g in groups:
    values = []
    for run in g.runs:
      got = [run.metric(k) for k in keys]
      if got and all(v is not None for v in got):
        values.append(sum(got) / len(got))
    if len(values) > len(best):
      best = tuple(values)
  return Cell(best)


def pair_grid(groups: Sequence[Group], dataset: str, method: str, row_title: str,
              rows: Sequence[Tuple[str, Sequence[str]]],
              columns: Sequence[Tuple[str, str]]) -> str:
  """One data set and method in the paper's per-row layout (Tables 6 and 7): a row per
  `(label, parts)`, a Base and a +SD-Dropout column per `(name, template)`; a cell is, per run,
  the mean of `template.format(part)` over `parts` (an 'Average' row lists them all), then
  mean ± std over seeds. Rows without a number are dropped; '' when none is left."""
  by_sdd = collections.defaultdict(list)
  for g in groups:
    if in_main_tables(g) and g.field('dataset') == dataset and g.field('method') == method:
      by_sdd[g.field('sd_dropout')].append(g)
  table = []
  for row_label, parts in rows:
    row = [row_label]
    for _, template in columns:
      keys = [template.format(p) for p in parts]
      row += _pair(_mean_cell(by_sdd[BASE], keys), _mean_cell(by_sdd[PLUS_SDD], keys),
                   lower_is_better(keys[0]))
    if any(c.values for c in row[1:]):
      table.append(row)
  weights = '/'.join(f'{w:g}' for w in sorted({sdd_weight(g) for g in by_sdd[PLUS_SDD]}))
  plus = f'{PLUS_SDD} (λ={weights})' if weights else PLUS_SDD
  header = [row_title] + [f'{name} {s}' for name, _ in columns for s in (BASE, plus)]
  return markdown(header, table) if table else ''


def table3(groups: Sequence[Group], dataset: str = 'imagenet2012') -> str:
  """Table 3's layout: a row per method (Cross-Entropy, SD-Dropout, ...) on `dataset`, columns
  Acc@1 and Acc@5; the best of each column bold. '' when no run is on `dataset`."""
  cells = collections.defaultdict(list)
  for g in groups:
    if in_main_tables(g) and g.field('dataset') == dataset:
      cells[(g.field('method'), g.field('sd_dropout'))].append(g)
  keys = sorted(cells, key=lambda k: (order_key('method', k[0]), order_key('sd_dropout', k[1])))
  names = {(m, s): label('method', m) + ('' if s == BASE else f' {s}') for m, s in keys}
  names = {k: ('SD-Dropout' if k == ('ce', PLUS_SDD) else n) + (
      f' {weight_note(cells[k][0])}' if k[1] == PLUS_SDD else '') for k, n in names.items()}
  rows = [[names[k]] + [cell(cells[k], f'test/{m}') for m in ('top1', 'top5')] for k in keys]
  for c in (1, 2):
    embolden(rows, [(r, c) for r in range(len(rows))])
  return markdown(['Method', 'Acc@1', 'Acc@5'], rows) if rows else ''
