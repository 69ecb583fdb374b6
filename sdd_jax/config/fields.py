"""`Field`: one config value's type and range, and `check(field, value)`, which raises
`ConfigError` with one line naming the field, what is allowed and what was given. Numbers
must be finite wherever they appear. The table of fields is `config/schema.py`.
"""
import dataclasses
import math
import numbers
from typing import Any, Optional, Sequence, Tuple

from sdd_jax.errors import UserError
from sdd_jax.registry import nearest  # noqa: F401  (one definition; config errors use it)

KINDS = ('int', 'number', 'bool', 'str', 'strings', 'tuple', 'any')


class ConfigError(UserError):
  """A config value that cannot work; the message names the field and the fix."""


@dataclasses.dataclass(frozen=True)
class Field:
  """One config value. `kind`: int | number (int or float) | bool | str | strings (a tuple of
  strings or one comma-separated string) | tuple | any.

  `low`/`high` bound numbers (and tuple items), inclusive unless `low_open`/`high_open`;
  `choices` (a tuple or a function returning one) lists the allowed strings; `item` is the
  kind of a tuple's items, `lengths` the allowed tuple lengths; `optional`: None allowed;
  `allowed`: the message's description when the default one would not say enough.
  """
  path: str
  kind: str
  low: Optional[float] = None
  high: Optional[float] = None
  low_open: bool = False
  high_open: bool = False
  choices: Any = None
  item: Optional[str] = None
  lengths: Optional[Tuple[int, ...]] = None
  optional: bool = False
  allowed: str = ''

  def choice_names(self) -> Optional[Sequence[str]]:
    return self.choices() if callable(self.choices) else self.choices

  def describe(self) -> str:
    """What is allowed, e.g. 'an integer >= 1', 'in [0, 1)', "one of ('a', 'b')"."""
    if self.allowed:
      return self.allowed
    if self.choices is not None:
      return f'one of {self.choice_names()}'
    if self.kind == 'tuple':
      what = {'int': 'integers', 'number': 'finite numbers', 'str': 'strings'}.get(self.item,
                                                                                   'values')
      bounds = _bounds(self, 'each')
      return f'a tuple of {what}' + (f' ({bounds})' if bounds else '')
    bounds = _bounds(self, '')
    noun = {'int': 'an integer', 'number': 'a finite number', 'bool': 'True or False',
            'str': 'a string', 'strings': 'a tuple of strings or a comma-separated string',
            'any': 'a value'}[self.kind]
    if self.kind == 'number' and bounds:
      return bounds
    return f'{noun} {bounds}'.strip()


def _bounds(field: Field, prefix: str) -> str:
  low, high = field.low, field.high
  if low is not None and high is not None:
    text = f'in {"(" if field.low_open else "["}{low:g}, {high:g}{")" if field.high_open else "]"}'
  elif low is not None:
    text = f'{">" if field.low_open else ">="} {low:g}'
  elif high is not None:
    text = f'{"<" if field.high_open else "<="} {high:g}'
  else:
    return ''
  return f'{prefix} {text}'.strip()


def is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def _scalar_ok(kind: str, value) -> bool:
  return {'int': is_int, 'number': is_number, 'bool': lambda v: isinstance(v, bool),
          'str': lambda v: isinstance(v, str), 'any': lambda v: True}[kind](value)


def _in_range(field: Field, value) -> bool:
  if field.low is not None and not (value > field.low if field.low_open else value >= field.low):
    return False
  return field.high is None or (value < field.high if field.high_open else value <= field.high)


def valid(field: Field, value) -> bool:
  """True when `value` has the field's type and lies in its range."""
  if value is None:
    return field.optional
  if field.kind == 'strings':
    return isinstance(value, str) or (isinstance(value, (tuple, list))
                                      and all(isinstance(v, str) for v in value))
  if field.kind == 'tuple':
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
      return False
    if field.lengths is not None and len(value) not in field.lengths:
      return False
    if field.item is None:
      return True
    return all(_scalar_ok(field.item, v) and (field.item not in ('int', 'number')
                                              or _in_range(field, v)) for v in value)
  if not _scalar_ok(field.kind, value):
    return False
  if field.kind in ('int', 'number') and not _in_range(field, value):
    return False
  names = field.choice_names()
  return names is None or value in names


def check(field: Field, value) -> None:
  """Raises ConfigError('config.<path>: must be <allowed>, got <value> (set ...)')."""
  if not valid(field, value):
    allowed = field.describe()
    if _is_float(value) and not math.isfinite(value) and not allowed.startswith('a finite'):
      allowed = f'a finite number ({allowed})' if field.kind == 'number' else allowed
    raise ConfigError(f'config.{field.path}: must be {allowed}, got {value!r} '
                      f'(set --config.{field.path}=...)')


def _is_float(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)
