"""`config.evals.<key>`: big_vision-style evaluation sections, and their one-line checks.

    config.evals.<key> = {'type': ..., 'pred': ..., 'split': ..., 'in_training': ...,
                          'every_epochs': ..., ...}

- `key`: a free name; the results land in `<workdir>/evals/<key>/`.
- `type`: the registered evaluator to run; '' (or absent) means the key itself, so a section
  keyed by an evaluator's name (`config.evals.accuracy = {...}`, every config and workdir
  written before sections had a type) runs that evaluator.
- `pred`: the predictor: '' = the plain network (`methods.inference_variables`); otherwise the
  name of a method's extra predictor (`methods.eval_logits`, named by the last part of its
  metric prefix: DML's 'net1' and 'ensemble').
- `split`: the data split: '' = `config.data.eval_split`; else `config.data.train_split` or
  `config.data.eval_split` by name (both are opened, and checked, before a workdir is touched).
- `in_training`: True (default) runs the section during training (every `every_epochs` epochs
  and after the last step); False leaves it to `evaluate.py`, e.g. to `evaluate.py --follow`
  beside the training, so FGSM, corruption or ODIN never pause the training's chips.
- the evaluator's own fields (`every_epochs`, ...), with its defaults.

One evaluator can so run on two splits or two predictors (two keys). Metric keys: a section
whose key is its type keeps the evaluator's keys (`test/top1`, `calibration/ece`, ...); any
other section's keys are renamed into the key: `<type>/<rest>` -> `<key>/<rest>` and any other
key `k` -> `<key>/k` (accuracy's `test/top1` -> `<key>/top1`), unless it sets accuracy's
`prefix` itself.
"""
import difflib
from typing import Dict, Iterable, Mapping, Sequence

# every section's fields and their defaults ('': the default predictor, split, type)
COMMON = {'type': '', 'pred': '', 'split': '', 'in_training': True}


def section_type(key: str, section) -> str:
  """The evaluator a section runs: its `type`, else its key."""
  kind = section.get('type') if hasattr(section, 'get') else None
  return kind or key


def in_training(section) -> bool:
  """Whether training runs the section (`in_training`, default True)."""
  value = section.get('in_training') if hasattr(section, 'get') else None
  return COMMON['in_training'] if value is None else bool(value)


def predictor_name(prefix: str) -> str:
  """'dml/net1' (a `methods.eval_logits` metric prefix) -> 'net1' (its `pred` name)."""
  return prefix.rsplit('/', 1)[-1]


def _nearest(name, known: Iterable[str]) -> str:
  close = difflib.get_close_matches(str(name), sorted(known), n=3, cutoff=0.6)
  return f'; did you mean {" or ".join(close)}?' if close else ''


def check_names(evals, registered: Mapping[str, Dict]) -> None:
  """Each section's evaluator exists and its fields are known. `registered`: {evaluator name:
  its defaults}. Raises ValueError with one line (before the types of the fields are checked)."""
  names = sorted(registered)
  if not hasattr(evals, 'keys'):
    raise ValueError(f'config.evals: must be a section per evaluator, got {evals!r}')
  for key in evals:
    section = evals[key]
    if not hasattr(section, 'keys'):
      raise ValueError(f'config.evals.{key}: must be a section of fields (a dict), got '
                       f'{section!r}')
    kind = section.get('type')
    if kind not in (None, '') and (not isinstance(kind, str) or kind not in registered):
      raise ValueError(f'config.evals.{key}.type: must be one of {names} (the evaluator to '
                       f'run), got {kind!r}{_nearest(kind, names)}')
    if not kind and key not in registered:
      raise ValueError(f'config.evals: must be a section per evaluator, named one of {names}, '
                       f'got {key!r}{_nearest(key, names)} (or give it a type: '
                       f"config.evals.{key}.type='accuracy')")
    known = set(registered[section_type(key, section)]) | set(COMMON)
    unknown = sorted(set(section.keys()) - known)
    if unknown:
      raise ValueError(f'config.evals.{key}: unknown field(s) {unknown}; known: '
                       f'{", ".join(sorted(known))}{_nearest(unknown[0], known)}')


def check_values(evals, predictors: Sequence[str], data_config) -> None:
  """Each section's `pred` names a predictor of the configured methods (`predictors`: their
  names) and its `split` one of the data config's splits. Raises ValueError with one line."""
  splits = (data_config.train_split, data_config.eval_split)
  for key in evals:
    pred, split = evals[key].get('pred') or '', evals[key].get('split') or ''
    if pred and pred not in predictors:
      known = (f"or one of the methods' predictors {sorted(predictors)}" if predictors else
               '(the configured methods add no other predictor)')
      raise ValueError(f"config.evals.{key}.pred: must be '' (the network) {known}, got "
                       f'{pred!r}{_nearest(pred, predictors)}')
    if split and split not in splits:
      raise ValueError(f"config.evals.{key}.split: must be '' (the eval split), "
                       f'{splits[0]!r} (data.train_split) or {splits[1]!r} (data.eval_split), '
                       f'got {split!r}')


def sets_prefix(section, defaults) -> bool:
  """Whether `section` sets accuracy's `prefix` to other than its default."""
  return 'prefix' in section and section['prefix'] != defaults.get('prefix')


def rename(key: str, metrics: Dict[str, float], namespace: str) -> Dict[str, float]:
  """The metric keys of a section `key` that is not keyed by its type nor sets its `prefix`
  (see the module docstring); `namespace` is the leading part of the evaluator's own keys
  (`calibration`, accuracy's `prefix`; '' for odin, whose keys all keep their first part)."""
  out = {}
  for name, value in metrics.items():
    head, _, rest = name.partition('/')
    out[f'{key}/{rest}' if head == namespace and rest else f'{key}/{name}'] = value
  return out
