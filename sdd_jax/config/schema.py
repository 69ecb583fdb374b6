"""The config schema: every field's type and range, in one place.

`fields(config)` lists the `Field`s (config/fields.py) of a config: the fixed ones
(`STATIC`), one per hyper-parameter of each configured method (type from the method
dataclass's annotation), one per key of each configured evaluator section (type from the
evaluator's default) and one per `model.kwargs` entry (from the model constructor's fields).
`check(field, value)` raises `ConfigError` with one line. `all_fields()` lists every field
any config can have, for the generated tests. Cross-field rules (mean and std of one length,
lr boundaries inside the run, ...) live in `config/validation.py`.
"""
import dataclasses
import numbers
import typing
from typing import Any, List, Optional, Sequence, Tuple

from sdd_jax import data as data_lib
from sdd_jax import evaluators as evaluators_lib
from sdd_jax import methods as methods_lib
from sdd_jax import models as models_lib
from sdd_jax.train import optim as optim_lib
from sdd_jax.config.fields import ConfigError, Field, check  # pylint: disable=unused-import  # re-exported

DTYPES = ('float32', 'bfloat16', 'float16')
AUGMENTS = ('cifar', 'imagenet', 'none')


def _int(path, low=1, **kw) -> Field:
  return Field(path, 'int', low=low, **kw)


STATIC: Tuple[Field, ...] = (
    _int('seed', 0), _int('batch_size'), _int('eval_batch_size'), _int('num_epochs'),
    _int('checkpoint_every_epochs'), _int('max_to_keep'), _int('log_every_steps'),
    Field('model.name', 'str', choices=models_lib.MODELS.names),
    Field('model.dtype', 'str', choices=DTYPES),
    Field('model.head_hidden', 'tuple', item='int', low=1,
          allowed='a tuple of positive layer widths, e.g. (512,)'),
    Field('model.kwargs', 'any'),
    _int('model.bn_group', 0, allowed='an integer >= 0 (0: the whole batch; G: BatchNorm '
                                      'statistics per block of G examples)'),
    Field('model.init_from', 'str'), Field('model.init_from_skip_head', 'bool'),
    Field('data.source', 'str', choices=data_lib.SOURCES.names),
    Field('data.name', 'str'), Field('data.data_dir', 'str', optional=True),
    Field('data.manual_dir', 'str', optional=True), Field('data.download', 'bool'),
    Field('data.path', 'str'), Field('data.train_split', 'str'), Field('data.eval_split', 'str'),
    Field('data.image_key', 'str'), Field('data.label_key', 'str'),
    Field('data.augment', 'str', choices=AUGMENTS),
    _int('data.image_size'), _int('data.crop_padding', 0), Field('data.flip', 'bool'),
    _int('data.eval_resize'),
    Field('data.mean', 'tuple', item='number', lengths=(1, 3),
          allowed='a tuple with one value per channel (1 or 3), as long as data.std'),
    Field('data.std', 'tuple', item='number', low=0, low_open=True, lengths=(1, 3),
          allowed='positive numbers, one per channel (1 or 3)'),
    _int('data.num_classes'), _int('data.num_examples', 0),
    Field('data.synthetic_shape', 'tuple', item='int', low=1, lengths=(3,),
          allowed='a tuple (height, width, channels) of positive integers'),
    _int('data.prefetch', 0),
    _int('data.num_workers', -1, allowed='-1 (one worker process per CPU core), 0 (none) or '
                                         'a number of worker processes'),
    Field('optim.lr', 'number', low=0, low_open=True), Field('optim.momentum', 'number', 0, 1,
                                                              high_open=True),
    Field('optim.nesterov', 'bool'), Field('optim.weight_decay', 'number', low=0),
    Field('optim.lr_boundaries', 'tuple', item='number'),
    Field('optim.lr_decay', 'number', 0, 1, low_open=True), Field('optim.warmup_epochs', 'number',
                                                                  low=0),
    Field('optim.name', 'str', choices=optim_lib.OPTIMIZERS),  # optional: sgd
    Field('optim.schedule', 'str', choices=optim_lib.SCHEDULES),  # optional: step
    _int('probe.every_steps', 0, allowed='an integer >= 0 (0: off)'),
    Field('probe.rate', 'number', 0, 1, high_open=True),
    Field('probe.temperature', 'number', low=0, low_open=True),
)
SECTIONS = ('model', 'data', 'optim', 'probe')  # ConfigDicts whose keys are all in STATIC
TOP_LEVEL = tuple(dict.fromkeys(f.path.split('.')[0] for f in STATIC)) + ('methods', 'evals')


def _kind_of_annotation(annotation) -> Optional[str]:
  """int -> 'int', float -> 'number', str -> 'str', bool -> 'bool', Sequence[int] -> 'tuple'."""
  if isinstance(annotation, str):  # `from __future__ import annotations`
    annotation = {'int': int, 'float': float, 'str': str, 'bool': bool}.get(annotation, Any)
  simple = {int: 'int', float: 'number', str: 'str', bool: 'bool'}
  if annotation in simple:
    return simple[annotation]
  origin = typing.get_origin(annotation)
  if origin in (tuple, list, Sequence, typing.get_origin(Sequence[int])):
    return 'tuple'
  return None


def method_fields(name: str) -> List[Field]:
  """One Field per hyper-parameter of method `name` (its dataclass fields); the ranges are
  the method's own `validate()`."""
  cls = methods_lib.METHODS.get(name)
  hints = typing.get_type_hints(cls)
  return [Field(f'methods.{name}.{f.name}', _kind_of_annotation(hints[f.name]) or 'any')
          for f in dataclasses.fields(cls)]


def evaluator_fields(name: str, section_key: str = '') -> List[Field]:
  """One Field per key of evaluator `name`'s section `evals.<section_key>` (default: `name`),
  typed by its default value, and the fields every section has (`type`, `pred`, `split`,
  `in_training`: evaluators/sections.py). Tuple fields also take a comma-separated string (e.g. `sets`)."""
  section_key = section_key or name
  out = [Field(f'evals.{section_key}.type', 'str',
               choices=lambda: ('',) + tuple(evaluators_lib.EVALUATORS.names())),
         Field(f'evals.{section_key}.pred', 'str'), Field(f'evals.{section_key}.split', 'str'),
         Field(f'evals.{section_key}.in_training', 'bool')]
  for key, default in evaluators_lib.EVALUATORS.get(name).defaults.items():
    path = f'evals.{section_key}.{key}'
    if key == 'every_epochs':
      out.append(_int(path, 0, allowed='an integer >= 0 (0: only after training)'))
    elif isinstance(default, bool):
      out.append(Field(path, 'bool'))
    elif isinstance(default, numbers.Integral):
      out.append(_int(path, 0))
    elif isinstance(default, numbers.Real):
      out.append(Field(path, 'number'))
    elif isinstance(default, (tuple, list)):
      strings = all(isinstance(v, str) for v in default)
      out.append(Field(path, 'strings') if strings else Field(path, 'tuple', item='number'))
    else:
      out.append(Field(path, 'str'))
  return out


MODEL_ARGUMENTS_SET_ELSEWHERE = ('num_classes', 'head_hidden', 'dtype', 'bn_group', 'parent',
                                 'name')


def model_kwarg_fields(model_name: str) -> List[Field]:
  """One Field per constructor argument `model.kwargs` may set for model `model_name` (the
  flax module's dataclass fields, less those the trainer passes itself). Integer arguments
  are sizes (>= 1), float arguments rates in [0, 1) (the ViT's dropout and drop_path)."""
  cls = models_lib.model_class(model_name)
  hints = typing.get_type_hints(cls)
  out = []
  for f in dataclasses.fields(cls):
    if f.name in MODEL_ARGUMENTS_SET_ELSEWHERE or not f.init:
      continue
    kind = _kind_of_annotation(hints.get(f.name, Any)) or 'any'
    low, high = {'int': (1, None), 'tuple': (1, None), 'number': (0, 1)}.get(kind, (None, None))
    out.append(Field(f'model.kwargs.{f.name}', kind, low=low, high=high, high_open=True,
                     item='int' if kind == 'tuple' else None))
  return out


def fields(config) -> List[Field]:
  """Every Field of `config`: STATIC, then its methods', evaluators' and model.kwargs'."""
  out = list(STATIC)
  for name in config.methods:
    out += method_fields(name)
  for key in config.evals:
    out += evaluator_fields(evaluators_lib.sections.section_type(key, config.evals[key]), key)
  return out


def all_fields() -> List[Field]:
  """Every field any config can have (every registered method and evaluator), for tests."""
  out = list(STATIC)
  for name in methods_lib.METHODS.names():
    out += method_fields(name)
  for name in evaluators_lib.EVALUATORS.names():
    out += evaluator_fields(name)
  for name in models_lib.MODELS.names():
    out += [f for f in model_kwarg_fields(name) if f not in out]
  return out


def get(config, path: str):
  """The value at dotted `path` of `config`."""
  value = config
  for part in path.split('.'):
    value = value[part]
  return value
