"""Runs, seed groups and paper-style markdown tables for `sdd_jax/report.py`.

A cell is the mean ± sample standard deviation (ddof=1) over a group's seeds, `(n=k)` when
k < 3 or k differs from the table's most common count, `–` when no run has the number.
Numbers print with 2 decimals; rows and columns follow the paper's order where it has one.
"""
import collections
import dataclasses
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# Paper Table 1 order, then the others alphabetically.
METHOD_ORDER = ('ce', 'cs_kd', 'ddgsd', 'byot', 'dml', 'label_smoothing')
METHOD_LABELS = {'ce': 'Cross-Entropy', 'cs_kd': 'CS-KD', 'ddgsd': 'DDGSD', 'byot': 'BYOT',
                 'dml': 'DML', 'label_smoothing': 'LS', 'ps_kd': 'PS-KD'}
DATASET_ORDER = ('cifar100', 'caltech_birds2011', 'stanford_dogs')
SDD = 'sd_dropout'
BASE, PLUS_SDD = 'base', '+ SD-Dropout'
# Values of the pseudo fields and of some config fields, in the paper's order.
VALUE_ORDER = {'sd_dropout': (BASE, PLUS_SDD),
               'methods.sd_dropout.direction': ('forward', 'reverse', 'both')}
# Paper values of the ablated fields: a table pivoting on some of them holds the others here.
REFERENCE = {'model.head_hidden': [], 'methods.sd_dropout.direction': 'both',
             'methods.sd_dropout.position': 4, 'methods.sd_dropout.rate': 0.5}
# A run whose config has none of these fields (a data set without such a field) is not filtered.
DASH = '–'
STD_NOTE = 'mean ± sample std (ddof=1) over seeds; (n=k): k seeds where fewer than 3 or unusual'


@dataclasses.dataclass(frozen=True)
class Run:
  """One workdir: its config, `summary.json` and evaluator results (`{name: record}`)."""
  workdir: str
  config: Dict[str, Any]
  summary: Dict[str, Any]
  evals: Dict[str, Dict[str, Any]]

  def field(self, name: str, default: Any = None) -> Any:
    """A dotted config field (`methods.sd_dropout.rate`) or a pseudo field: `dataset`,
    `method`, `sd_dropout` (base / + SD-Dropout)."""
    if name == 'dataset':
      return dataset_name(self.config)
    if name == 'method':
      return method_name(self.config)
    if name == 'sd_dropout':
      return PLUS_SDD if SDD in (self.config.get('methods') or {}) else BASE
    value = self.config
    for part in name.split('.'):
      if not isinstance(value, dict) or part not in value:
        return default
      value = value[part]
    return value

  def metric(self, key: str) -> Optional[float]:
    """`summary.json` first, then any evaluator's metrics; None when missing or null."""
    value = self.summary.get(key)
    if value is None:
      for record in self.evals.values():
        value = (record.get('metrics') or {}).get(key)
        if value is not None:
          break
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class Group:
  """Runs whose configs differ only by `seed` (sorted by seed)."""
  runs: Tuple[Run, ...]

  def field(self, name: str, default: Any = None) -> Any:
    return self.runs[0].field(name, default)

  def values(self, key: str) -> List[float]:
    return [v for v in (run.metric(key) for run in self.runs) if v is not None]


def dataset_name(config: Dict[str, Any]) -> str:
  """`data.name` for tfds (and the built-in digits); `source:path` for local sources."""
  data = config.get('data') or {}
  source, name = data.get('source', 'tfds'), data.get('name', '?')
  if source in ('tfds', 'digits'):
    return str(name)
  return f'{source}:{data.get("path") or name}'


def method_name(config: Dict[str, Any]) -> str:
  """'ce' when no method besides `sd_dropout`, else the others joined by '+'."""
  others = sorted(m for m in (config.get('methods') or {}) if m != SDD)
  return '+'.join(others) or 'ce'


def _read_json(path: str) -> Dict[str, Any]:
  if not os.path.isfile(path):
    return {}
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def load_run(workdir: str) -> Run:
  evals = {}
  root = os.path.join(workdir, 'evals')
  for name in sorted(os.listdir(root)) if os.path.isdir(root) else ():
    record = _read_json(os.path.join(root, name, 'results.json'))
    if record:
      evals[name] = record
  return Run(workdir=workdir, config=_read_json(os.path.join(workdir, 'config.json')),
             summary=_read_json(os.path.join(workdir, 'summary.json')), evals=evals)


def find_workdirs(directory: str) -> List[str]:
  """`directory` itself if it holds `config.json`, else every such folder below it (sorted)."""
  if os.path.isfile(os.path.join(directory, 'config.json')):
    return [directory]
  found = []
  for root, dirs, files in os.walk(directory):
    dirs[:] = sorted(d for d in dirs if d not in ('checkpoints', 'tensorboard', 'evals'))
    if 'config.json' in files:
      found.append(root)
      dirs[:] = []
  return sorted(found)


def load_runs(dirs: Sequence[str]) -> List[Run]:
  workdirs = sorted({os.path.normpath(w) for d in dirs for w in find_workdirs(d)})
  return [load_run(w) for w in workdirs]


def _without_seed(config: Dict[str, Any]) -> str:
  return json.dumps({k: v for k, v in config.items() if k != 'seed'}, sort_keys=True)


def group_seeds(runs: Sequence[Run]) -> List[Group]:
  """Groups of runs equal but for `seed`, in a fixed order (dataset, method, SDD, config)."""
  by_config = collections.defaultdict(list)
  for run in runs:
    by_config[_without_seed(run.config)].append(run)
  groups = [Group(tuple(sorted(rs, key=lambda r: (str(r.config.get('seed')), r.workdir))))
            for rs in by_config.values()]
  return sorted(groups, key=lambda g: (order_key('dataset', g.field('dataset')),
                                       order_key('method', g.field('method')),
                                       order_key('sd_dropout', g.field('sd_dropout')),
                                       _without_seed(g.runs[0].config)))


def order_key(field: str, value: Any) -> Tuple:
  """Paper order where known, then numbers by value, then text."""
  known = {'method': METHOD_ORDER, 'dataset': DATASET_ORDER}.get(field) or VALUE_ORDER.get(
      field, ())
  rank = known.index(value) if value in known else len(known)
  if isinstance(value, bool) or value is None:
    return (rank, 2, 0, str(value))
  if isinstance(value, (int, float)):
    return (rank, 0, value, '')
  if isinstance(value, (list, tuple)):
    return (rank, 1, len(value), json.dumps(value))
  return (rank, 2, 0, str(value))


def label(field: str, value: Any) -> str:
  if field == 'method':
    return '+'.join(METHOD_LABELS.get(m, m) for m in str(value).split('+'))
  if isinstance(value, (list, tuple)):
    return '(' + ', '.join(str(v) for v in value) + (',)' if len(value) == 1 else ')')
  return str(value)


# --- cells and tables -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Cell:
  values: Tuple[float, ...]

  def text(self, usual_n: int) -> str:
    n = len(self.values)
    if n == 0:
      return DASH
    mean = sum(self.values) / n
    text = f'{mean:.2f}'
    if n > 1:
      std = math.sqrt(sum((v - mean) ** 2 for v in self.values) / (n - 1))
      text += f' ± {std:.2f}'
    if n < 3 or n != usual_n:
      text += f' (n={n})'
    return text


def cell(groups: Sequence[Group], key: str) -> Cell:
  """The values of the first group (of the most runs) that has `key`."""
  with_key = [g for g in groups if g.values(key)]
  if not with_key:
    return Cell(())
  return Cell(tuple(max(with_key, key=lambda g: len(g.values(key))).values(key)))


def markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A markdown table; Cells are printed with the table's most common seed count."""
  counts = collections.Counter(len(c.values) for row in rows for c in row
                               if isinstance(c, Cell) and c.values)
  usual = max(counts, key=lambda n: (counts[n], n)) if counts else 0
  text = lambda c: c.text(usual) if isinstance(c, Cell) else str(c)
  lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(text(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


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


def at_reference(g: Group, free: Sequence[str]) -> bool:
  """The group holds every `REFERENCE` field not in `free` at its paper value (or lacks it)."""
  for field, value in REFERENCE.items():
    if field not in free and g.field(field, value) != value:
      return False
  return True


def pivot(groups: Sequence[Group], row_field: str, col_field: Optional[str], metric: str,
          keep: Callable[[Group], bool] = lambda g: True, title: str = '') -> str:
  """A table of `metric`: one row per value of `row_field`, one column per value of
  `col_field` (or one column); fields may be dotted config fields or `dataset` / `method` /
  `sd_dropout`. Groups failing `keep` are left out; a cell with several groups shows the one with
  most seeds and gets a footnote."""
  cells = _select(groups, row_field, col_field, keep)
  rows_v = _values([g for gs in cells.values() for g in gs], row_field)
  cols_v = _values([g for gs in cells.values() for g in gs], col_field) if col_field else ['']
  columns = [title or row_field] + ([label(col_field, c) for c in cols_v] if col_field
                                    else [metric])
  rows = [[label(row_field, r)] + [cell(cells.get((json.dumps(r), json.dumps(c)), []), metric)
                                   for c in cols_v] for r in rows_v]
  return '\n'.join([markdown(columns, rows)] + _ambiguity(
      {(label(row_field, json.loads(r)), label(col_field, json.loads(c)) if col_field else ''): gs
       for (r, c), gs in sorted(cells.items())}))


def table1(groups: Sequence[Group], metric: str = 'test/top1') -> str:
  """Methods × (data set × {base, + SD-Dropout}), the paper's reference settings only."""
  keep = lambda g: at_reference(g, ())
  cells = collections.defaultdict(list)
  for g in groups:
    if keep(g):
      cells[(g.field('method'), g.field('dataset'), g.field('sd_dropout'))].append(g)
  methods = sorted({m for m, _, _ in cells}, key=lambda m: order_key('method', m))
  datasets = sorted({d for _, d, _ in cells}, key=lambda d: order_key('dataset', d))
  columns = ['Method'] + [f'{d} {s}' for d in datasets for s in (BASE, PLUS_SDD)]
  rows = [[label('method', m)] + [cell(cells.get((m, d, s), []), metric)
                                  for d in datasets for s in (BASE, PLUS_SDD)] for m in methods]
  return '\n'.join([markdown(columns, rows)] + _ambiguity(
      {(label('method', m), d, s): gs for (m, d, s), gs in sorted(cells.items())}))


def base_vs_sdd(groups: Sequence[Group], metrics: Sequence[Tuple[str, str]]) -> str:
  """Rows (data set, method); per metric a base and a + SD-Dropout column."""
  keep = lambda g: at_reference(g, ())
  cells = collections.defaultdict(list)
  for g in groups:
    if keep(g):
      cells[(g.field('dataset'), g.field('method'), g.field('sd_dropout'))].append(g)
  pairs = sorted({(d, m) for d, m, _ in cells},
                 key=lambda p: (order_key('dataset', p[0]), order_key('method', p[1])))
  columns = ['Data set', 'Method'] + [f'{name} {s}' for name, _ in metrics
                                      for s in (BASE, PLUS_SDD)]
  rows = [[d, label('method', m)] + [cell(cells.get((d, m, s), []), key)
                                     for _, key in metrics for s in (BASE, PLUS_SDD)]
          for d, m in pairs]
  rows = [r for r in rows if any(c.values for c in r[2:])]
  return markdown(columns, rows) if rows else ''


def metric_keys(runs: Sequence[Run], prefix: str) -> List[str]:
  """Every metric key starting with `prefix` in any run, sorted."""
  keys = set(k for r in runs for k in r.summary if k.startswith(prefix))
  keys |= {k for r in runs for rec in r.evals.values() for k in (rec.get('metrics') or {})
           if k.startswith(prefix)}
  return sorted(keys)
