"""Runs, seed groups, fields and labels for the report (`sdd_jax/report.py`).

A run is one workdir (its `config.json`, `summary.json` and `evals/<name>/results.json`); runs
whose configs differ only by `seed` are one group. Besides dotted config fields, a run has the
pseudo fields `dataset`, `method`, `sd_dropout` (Base / +SD-Dropout), `kl_direction` (Table 9's
columns) and `dropout` (Table 11's columns). A run whose files cannot be read is left out and
named (`report_files.py` says what counts as unreadable).
"""
import collections
import dataclasses
import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sdd_jax import methods
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.report import files as report_files

# Paper Table 1 order, then the others alphabetically; names and baselines from the methods.
METHOD_ORDER = ('ce', *methods.paper_order())
METHOD_LABELS = {'ce': 'Cross-Entropy', **methods.labels()}
# Baselines of one ablation table (Table 11), not self-KD methods: left out of Tables 1-7.
BASELINE_METHODS = methods.baselines()
DATASET_ORDER = ('cifar100', 'caltech_birds2011', 'stanford_dogs', 'imagenet2012')
DATASET_LABELS = {'cifar100': 'CIFAR-100', 'caltech_birds2011': 'CUB-200-2011',
                  'stanford_dogs': 'Stanford Dogs', 'imagenet2012': 'ImageNet'}
SDD, FEATURE_DROPOUT = 'sd_dropout', 'feature_dropout'
BASE, PLUS_SDD = 'Base', '+SD-Dropout'
STANDARD, STANDARD_EQUAL = '+Dropout (standard)', '+Dropout (standard†)'
# How the paper names some values of a field.
VALUE_LABELS = {
    'kl_direction': {'forward': 'Forward', 'reverse': 'Reverse', 'both': 'Both Directions'},
    'model.name': {'resnet18_cifar': 'ResNet-18', 'resnet34_cifar': 'ResNet-34',
                   'resnet50_cifar': 'ResNet-50', 'densenet121_cifar': 'DenseNet-121',
                   'preact_resnet18_cifar': 'PreAct ResNet-18', 'resnet18': 'ResNet-18 (224 px)',
                   'resnet152': 'ResNet-152 (224 px)'}}
# Values of the pseudo fields and of some config fields, in the paper's order.
VALUE_ORDER = {'sd_dropout': (BASE, PLUS_SDD),
               'kl_direction': (BASE, 'forward', 'reverse', 'both'),
               'dropout': (BASE, STANDARD, STANDARD_EQUAL, PLUS_SDD),
               'methods.sd_dropout.direction': ('forward', 'reverse', 'both'),
               'model.name': ('resnet18_cifar', 'resnet34_cifar', 'densenet121_cifar')}
# Paper values of the ablated fields: a table pivoting on some of them holds the others here.
REFERENCE = {'model.head_hidden': [], 'methods.sd_dropout.direction': 'both',
             'methods.sd_dropout.position': 4, 'methods.sd_dropout.rate': 0.5,
             'methods.feature_dropout.rate': 0.5}
# A run whose config has none of these fields (a data set without such a field) is not filtered.


@dataclasses.dataclass(frozen=True)
class Run:
  """One workdir: its config, `summary.json`, evaluator results (`{name: record}`) and the
  `probe/...` records of its `metrics.jsonl` (step order, the last of a repeated step)."""
  workdir: str
  config: Dict[str, Any]
  summary: Dict[str, Any]
  evals: Dict[str, Dict[str, Any]]
  probe: Tuple[Dict[str, Any], ...] = ()

  def field(self, name: str, default: Any = None) -> Any:
    """A dotted config field (`methods.sd_dropout.rate`) or a pseudo field: `dataset`,
    `method`, `sd_dropout` (Base / +SD-Dropout), `kl_direction` (Base, or the direction of
    SD-Dropout alone), `dropout` (Base / +Dropout (standard) / +Dropout (standard†) with K > 1
    masks / +SD-Dropout alone); the last two are None for other method sets."""
    methods = self.config.get('methods') or {}
    if name == 'dataset':
      return dataset_name(self.config)
    if name == 'method':
      return method_name(self.config)
    if name == 'sd_dropout':
      return PLUS_SDD if SDD in methods else BASE
    if name == 'kl_direction':
      if not methods:
        return BASE
      return methods[SDD].get('direction', 'both') if set(methods) == {SDD} else None
    if name == 'dropout':
      return _dropout_variant(methods)
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


def _dropout_variant(methods: Dict[str, Any]) -> Optional[str]:
  if not methods:
    return BASE
  if set(methods) == {SDD}:
    return PLUS_SDD
  if set(methods) == {FEATURE_DROPOUT}:
    samples = int(methods[FEATURE_DROPOUT].get('samples', 1))
    return {1: STANDARD, 2: STANDARD_EQUAL}.get(samples, f'+Dropout (standard†, K={samples})')
  return None


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


def probe_records(records: Sequence[Dict[str, Any]]) -> Tuple[Dict[str, Any], ...]:
  """The records holding `probe/...` keys, one per step (the last wins), in step order."""
  by_step = {r['step']: r for r in records if any(k.startswith('probe/') for k in r)}
  return tuple(by_step[s] for s in sorted(by_step))


# Every field the tables ask of a run: a config that cannot answer one is unreadable.
_FIELDS = ('dataset', 'method', 'sd_dropout', 'kl_direction', 'dropout', 'model.name',
           'model.head_hidden', *REFERENCE)


def load_run(workdir: str, problems: Optional[List[str]] = None) -> Run:
  """The run in `workdir`; `report_files.RunFileError` when a file of it cannot be read. Bad
  lines of `metrics.jsonl` are skipped, with a message appended to `problems`."""
  path = workdir_path.join(workdir, 'config.json')
  config = report_files.read_object(path) or {}
  report_files.check_config(path, config)
  path = workdir_path.join(workdir, 'summary.json')
  summary = report_files.read_object(path) or {}
  report_files.check_summary(path, summary)
  evals = {}
  root = workdir_path.path(workdir) / 'evals'
  for name in sorted(p.name for p in root.iterdir()) if root.is_dir() else ():
    path = workdir_path.join(workdir, 'evals', name, 'results.json')
    record = report_files.read_object(path)
    if record:
      report_files.check_types(path, record, report_files.RESULTS_TYPES)
      evals[name] = record
  lines, problem = report_files.read_lines(workdir_path.join(workdir, 'metrics.jsonl'))
  if problem and problems is not None:
    problems.append(problem)
  run = Run(workdir=workdir, config=config, summary=summary, evals=evals,
            probe=probe_records(lines))
  for name in _FIELDS:
    try:
      run.field(name)
    except (AttributeError, TypeError, ValueError) as e:
      raise report_files.RunFileError(
          f'{workdir_path.join(workdir, "config.json")}: cannot read the field {name} '
          f'({type(e).__name__}: {e})') from None
  return run


def load_runs(dirs: Sequence[str], problems: Optional[List[str]] = None) -> List[Run]:
  """Every readable run at or below `dirs`; what was left out (a run whose files cannot be
  read, bad lines of metrics.jsonl) is appended to `problems`, one line each."""
  problems = [] if problems is None else problems
  workdirs = sorted({workdir_path.normalize(w) for d in dirs
                     for w in report_files.find_workdirs(d, problems)})
  runs = []
  for workdir in workdirs:
    try:
      runs.append(load_run(workdir, problems))
    except (report_files.RunFileError, OSError) as e:  # OSError: e.g. evals/ not readable
      problems.append(f'skipped run {workdir}: ' + str(e).replace(workdir_path.join(workdir, ''), '', 1))
  return runs


def _without_seed(config: Dict[str, Any]) -> str:
  """The grouping key: the config without `seed`, its method sections resolved (a config.json
  written before they were resolved groups with the same config's resolved one)."""
  resolved = methods.resolve_config(config)
  return json.dumps({k: v for k, v in resolved.items() if k != 'seed'}, sort_keys=True)


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
  if field == 'dataset':
    return DATASET_LABELS.get(value, str(value))
  if isinstance(value, str) and value in VALUE_LABELS.get(field, {}):
    return VALUE_LABELS[field][value]
  if isinstance(value, (list, tuple)):
    return '(' + ', '.join(str(v) for v in value) + (',)' if len(value) == 1 else ')')
  return str(value)


def at_reference(g: 'Group', free: Sequence[str]) -> bool:
  """The group holds every `REFERENCE` field not in `free` at its paper value (or lacks it)."""
  for field, value in REFERENCE.items():
    if field not in free and g.field(field, value) != value:
      return False
  return True


def metric_keys(runs: Sequence[Run], prefix: str) -> List[str]:
  """Every metric key starting with `prefix` in any run, sorted."""
  keys = set(k for r in runs for k in r.summary if k.startswith(prefix))
  keys |= {k for r in runs for rec in r.evals.values() for k in (rec.get('metrics') or {})
           if k.startswith(prefix)}
  return sorted(keys)
