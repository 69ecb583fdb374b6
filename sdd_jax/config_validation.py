"""validate(config): every value checked before the workdir is touched or anything compiles.

Each problem raises `ConfigError` with one line: the field, what is allowed, what was given.
"""
import numbers

from sdd_jax import data as data_lib
from sdd_jax import evaluators as evaluators_lib
from sdd_jax import methods as methods_lib
from sdd_jax import models as models_lib
from sdd_jax.errors import UserError

TOP_LEVEL = ('seed', 'model', 'data', 'batch_size', 'eval_batch_size', 'num_epochs', 'optim',
             'methods', 'evals', 'probe', 'checkpoint_every_epochs', 'max_to_keep',
             'log_every_steps')
DTYPES = ('float32', 'bfloat16', 'float16')
AUGMENTS = ('cifar', 'imagenet', 'none')


class ConfigError(UserError):
  """A config value that cannot work; the message names the field and the fix."""


def _require(ok: bool, field: str, allowed: str, value) -> None:
  if not ok:
    raise ConfigError(f'config.{field}: must be {allowed}, got {value!r} '
                      f'(set --config.{field}=...)')


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_int(config, field: str) -> None:
  value = config
  for part in field.split('.'):
    value = value[part]
  _require(_is_int(value) and value >= 1, field, 'an integer >= 1', value)


def validate(config) -> None:
  """Raises ConfigError on the first bad value of `config`."""
  missing = [k for k in TOP_LEVEL if k not in config]
  if missing:
    raise ConfigError(f'config: missing field(s) {missing}; start from configs/common.recipe()')
  unknown = sorted(set(config.keys()) - set(TOP_LEVEL))
  if unknown:
    raise ConfigError(f'config: unknown field(s) {unknown}; known: {", ".join(TOP_LEVEL)}')
  _require(_is_int(config.seed) and config.seed >= 0, 'seed', 'an integer >= 0', config.seed)
  for field in ('batch_size', 'eval_batch_size', 'num_epochs', 'checkpoint_every_epochs', 'max_to_keep', 'log_every_steps'):
    _positive_int(config, field)
  _validate_model(config.model)
  _validate_data(config.data)
  _validate_optim(config.optim, config.num_epochs)
  for name in config.methods:
    _require(name in methods_lib.METHODS, 'methods',
             f'a section per method, named one of {methods_lib.METHODS.names()}', name)
  try:
    methods = methods_lib.create_methods(config.methods)
  except ValueError as e:
    raise ConfigError(f'config.{e}') from None
  _validate_method_needs(methods, config)
  _validate_evals(config.evals)
  _validate_probe(config.probe)


def _validate_probe(probe) -> None:
  _require(_is_int(probe.every_steps) and probe.every_steps >= 0, 'probe.every_steps',
           'an integer >= 0 (0: off)', probe.every_steps)
  _require(_is_number(probe.rate) and 0 <= probe.rate < 1, 'probe.rate', 'in [0, 1)',
           probe.rate)
  _require(_is_number(probe.temperature) and probe.temperature > 0, 'probe.temperature', '> 0',
           probe.temperature)


def _validate_method_needs(methods, config) -> None:
  """Each method's needs: batch keys the input pipeline provides, and what it asks of the rest
  of the config (`Method.check_config`)."""
  for method in methods:
    try:
      data_lib.loader_options(method.needs)
      method.check_config(config)
    except ValueError as e:
      raise ConfigError(f'config.methods.{method.name}: {e}') from None


def _validate_evals(evals) -> None:
  for name in evals:
    _require(name in evaluators_lib.EVALUATORS, 'evals',
             f'a section per evaluator, named one of {evaluators_lib.EVALUATORS.names()}',
             name)
    known = evaluators_lib.EVALUATORS.get(name).defaults
    unknown = sorted(set(evals[name]) - set(known))
    if unknown:
      raise ConfigError(f'config.evals.{name}: unknown field(s) {unknown}; known: '
                        f'{", ".join(sorted(known))}')
    every = evals[name].get('every_epochs', 0)
    _require(_is_int(every) and every >= 0, f'evals.{name}.every_epochs',
             'an integer >= 0 (0: only after training)', every)


def _validate_model(model) -> None:
  _require(model.name in models_lib.MODELS, 'model.name',
           f'one of {models_lib.MODELS.names()}', model.name)
  _require(model.dtype in DTYPES, 'model.dtype', f'one of {DTYPES}', model.dtype)
  hidden = tuple(model.head_hidden)
  _require(all(_is_int(h) and h >= 1 for h in hidden), 'model.head_hidden',
           'a tuple of positive layer widths, e.g. (512,)', model.head_hidden)


def _validate_data(data) -> None:
  _require(data.source in data_lib.SOURCES, 'data.source',
           f'one of {data_lib.SOURCES.names()}', data.source)
  _require(data.augment in AUGMENTS, 'data.augment', f'one of {AUGMENTS}', data.augment)
  _positive_int(data, 'image_size')
  _positive_int(data, 'num_classes')
  _require(_is_int(data.crop_padding) and data.crop_padding >= 0, 'data.crop_padding',
           'an integer >= 0', data.crop_padding)
  _require(len(data.mean) == len(data.std) and len(data.mean) in (1, 3), 'data.mean',
           'a tuple with one value per channel (1 or 3), as long as data.std', data.mean)
  _require(all(_is_number(s) and s > 0 for s in data.std), 'data.std', 'positive numbers',
           data.std)
  if data.source in ('npz', 'folder'):
    _require(bool(data.path), 'data.path', f'the data folder for source {data.source!r}',
             data.path)
  if data.source == 'synthetic':
    _positive_int(data, 'num_examples')


def _validate_optim(optim, num_epochs: int) -> None:
  _require(_is_number(optim.lr) and optim.lr > 0, 'optim.lr', '> 0', optim.lr)
  _require(_is_number(optim.momentum) and 0 <= optim.momentum < 1, 'optim.momentum',
           'in [0, 1)', optim.momentum)
  _require(_is_number(optim.weight_decay) and optim.weight_decay >= 0, 'optim.weight_decay',
           '>= 0', optim.weight_decay)
  _require(_is_number(optim.lr_decay) and 0 < optim.lr_decay <= 1, 'optim.lr_decay',
           'in (0, 1]', optim.lr_decay)
  boundaries = tuple(optim.lr_boundaries)
  _require(all(_is_number(b) and 0 < b < num_epochs for b in boundaries)
           and list(boundaries) == sorted(set(boundaries)), 'optim.lr_boundaries',
           f'increasing epochs inside (0, num_epochs={num_epochs})', optim.lr_boundaries)
  _require(_is_number(optim.warmup_epochs) and 0 <= optim.warmup_epochs < num_epochs,
           'optim.warmup_epochs', f'in [0, num_epochs={num_epochs})', optim.warmup_epochs)


def validate_for_devices(config, num_devices: int, num_processes: int) -> None:
  """The global batches must split evenly over the devices and the processes."""
  for field in ('batch_size', 'eval_batch_size'):
    value = config[field]
    if value % num_devices or value % num_processes:
      raise ConfigError(f'config.{field}: {value} does not divide over {num_devices} devices '
                        f'and {num_processes} processes; use a multiple of '
                        f'{max(num_devices, num_processes)} (set --config.{field}=...)')
