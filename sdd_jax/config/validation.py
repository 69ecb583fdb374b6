"""validate(config): every value checked before the workdir is touched or anything compiles.

One pass over the schema (`config_schema.fields`: type, finiteness and range of every field,
the methods' and evaluators' sections and `model.kwargs` included), then the rules that join
fields. Each problem raises `ConfigError` with one line: the field, what is allowed, what was
given; an unknown name also gives the nearest known ones.
"""
from sdd_jax.config import schema
from sdd_jax import data as data_lib
from sdd_jax import evaluators as evaluators_lib
from sdd_jax import methods as methods_lib
from sdd_jax import models as models_lib
from sdd_jax.train import profiling
from sdd_jax.registry import nearest

ConfigError = schema.ConfigError
TOP_LEVEL = schema.TOP_LEVEL
DTYPES = schema.DTYPES
AUGMENTS = schema.AUGMENTS
# Top-level fields a config may leave out (older workdirs' config.json): their default is off.
OPTIONAL = (profiling.FIELD,)


def _require(ok: bool, field: str, allowed: str, value) -> None:
  if not ok:
    raise ConfigError(f'config.{field}: must be {allowed}, got {value!r} '
                      f'(set --config.{field}=...)')


def _unknown(where: str, keys, known) -> None:
  unknown = sorted(set(keys) - set(known))
  if unknown:
    raise ConfigError(f'config{where}: unknown field(s) {unknown}; known: '
                      f'{", ".join(sorted(known))}{nearest(unknown[0], known)}')


def validate(config) -> None:
  """Raises ConfigError on the first bad value of `config`."""
  missing = [k for k in TOP_LEVEL if k not in config]
  if missing:
    raise ConfigError(f'config: missing field(s) {missing}; start from configs/common.recipe()')
  _unknown('', config.keys(), TOP_LEVEL + OPTIONAL)
  for section in schema.SECTIONS:
    if not hasattr(config[section], 'keys'):
      raise ConfigError(f'config.{section}: must be a section (ConfigDict), got '
                        f'{config[section]!r}')
    known = [f.path.split('.', 1)[1] for f in schema.STATIC if f.path.startswith(section + '.')]
    _unknown(f'.{section}', config[section].keys(), known)
  _check_sections(config.methods, 'methods', methods_lib.METHODS.names(), 'method')
  try:  # `config.evals.<key>`: a registered type (default: the key), known fields
    evaluators_lib.sections.check_names(config.evals, evaluators_lib.registered_defaults())
  except ValueError as e:
    raise ConfigError(str(e)) from None
  for name in config.methods:
    known = [f.path.rsplit('.', 1)[1] for f in schema.method_fields(name)]
    _unknown(f'.methods.{name}', config.methods[name].keys(), known)
  for field in schema.fields(config):
    if _present(config, field.path):
      schema.check(field, schema.get(config, field.path))
  _validate_model(config.model)
  _validate_bn_group(config.model, config.batch_size)
  _validate_data(config.data)
  _validate_optim(config.optim, config.num_epochs)
  try:
    methods = methods_lib.create_methods(config.methods)
  except ValueError as e:
    raise ConfigError(f'config.{e}') from None
  _validate_method_needs(methods, config)
  _validate_eval_sections(config, methods)
  profiling.check_steps(config.get(profiling.FIELD, ()))  # within the run: in the trainer


def _present(config, path: str) -> bool:
  *parents, last = path.split('.')
  for part in parents:
    config = config[part]
  return last in config


def _check_sections(sections, where: str, registered, kind: str) -> None:
  if not hasattr(sections, 'keys'):
    raise ConfigError(f'config.{where}: must be a section per {kind}, got {sections!r}')
  for name in sections:
    if name not in registered:
      raise ConfigError(f'config.{where}: must be a section per {kind}, named one of '
                        f'{registered}, got {name!r}{nearest(name, registered)}')
    if not hasattr(sections[name], 'keys'):
      raise ConfigError(f'config.{where}.{name}: must be a section of fields (a dict), got '
                        f'{sections[name]!r}')


def _validate_method_needs(methods, config) -> None:
  """Each method's needs: batch keys the input pipeline provides, and what it asks of the rest
  of the config (`Method.check_config`)."""
  for method in methods:
    try:
      data_lib.loader_options(method.needs)
      method.check_config(config)
    except ValueError as e:
      raise ConfigError(f'config.methods.{method.name}: {e}') from None


def _validate_eval_sections(config, methods) -> None:
  """What each evaluator asks of its own section (`Evaluator.check_section`: OOD set names,
  corruption names, ranges that the type schema cannot express), and each section's `pred`
  and `split` (`evaluators/sections.py`)."""
  evals = config.evals
  try:
    for key in evals:
      evaluator = evaluators_lib.EVALUATORS.get(evaluators_lib.sections.section_type(key,
                                                                                    evals[key]))
      evaluator.check_section({**evaluator.defaults, **evals[key]})
      evaluator.check_data({**evaluator.defaults, **evals[key]}, config.data)
    evaluators_lib.sections.check_values(
        evals, [evaluators_lib.sections.predictor_name(p)
                for p in methods_lib.eval_logits(methods)], config.data)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _validate_model(model) -> None:
  """`model.kwargs` against the model constructor's fields (names, types; sizes >= 1)."""
  kwargs = model.kwargs
  if not hasattr(kwargs, 'keys'):
    raise ConfigError(f'config.model.kwargs: must be a dict of constructor options, got '
                      f'{kwargs!r}')
  fields = {f.path.rsplit('.', 1)[1]: f for f in schema.model_kwarg_fields(model.name)}
  unknown = sorted(set(kwargs) - set(fields))
  if unknown:
    raise ConfigError(f'config.model.kwargs: {model.name} takes no option(s) {unknown}; its '
                      f'options: {", ".join(sorted(fields))}{nearest(unknown[0], fields)}')
  for name, value in kwargs.items():
    schema.check(fields[name], value)
  try:
    models_lib.check_options(model.name, dict(kwargs))
  except ValueError as e:
    raise ConfigError(f'config.model.kwargs: {e}') from None


def _validate_bn_group(model, batch_size: int) -> None:
  """`model.bn_group` (absent in older config.json: 0) divides the global batch, and is 0 for a
  model without BatchNorm. Dividing the rows per device is not required (groups that span
  devices give the same numbers, with BN collectives); docs/pods.md says when it pays."""
  group = model.get('bn_group', 0)
  if group and batch_size % group:
    raise ConfigError(f'config.model.bn_group: {group} does not divide batch_size={batch_size}; '
                      'use a divisor of the batch, or 0 for the whole batch '
                      '(set --config.model.bn_group=...)')
  if group and not models_lib.model_class(model.name).batch_norm:
    raise ConfigError(f'config.model.bn_group: {model.name} has no BatchNorm (LayerNorm only), '
                      f'so a group of {group} would change nothing; set '
                      '--config.model.bn_group=0')


def _validate_data(data) -> None:
  _require(len(data.mean) == len(data.std), 'data.mean',
           'a tuple with one value per channel (1 or 3), as long as data.std', data.mean)
  if data.source in ('npz', 'folder'):
    _require(bool(data.path), 'data.path', f'the data folder for source {data.source!r}',
             data.path)
  if data.source == 'synthetic':
    _require(data.num_examples >= 1, 'data.num_examples',
             "an integer >= 1 with source='synthetic'", data.num_examples)
  if data.augment == 'imagenet':
    _require(data.eval_resize >= data.image_size, 'data.eval_resize',
             f'>= data.image_size={data.image_size} (the centre crop of the resized image)',
             data.eval_resize)


def _validate_optim(optim, num_epochs: int) -> None:
  boundaries = tuple(optim.lr_boundaries)
  _require(all(0 < b < num_epochs for b in boundaries)
           and list(boundaries) == sorted(set(boundaries)), 'optim.lr_boundaries',
           f'increasing epochs inside (0, num_epochs={num_epochs})', optim.lr_boundaries)
  _require(optim.warmup_epochs < num_epochs, 'optim.warmup_epochs',
           f'in [0, num_epochs={num_epochs})', optim.warmup_epochs)


def validate_for_devices(config, num_devices: int, num_processes: int) -> None:
  """The global training batch must split evenly over the devices and the processes (the eval
  batch is padded with masked rows to a multiple of both: `parallel.eval_batch_rows`)."""
  value = config.batch_size
  if value % num_devices or value % num_processes:
    raise ConfigError(f'config.batch_size: {value} does not divide over {num_devices} devices '
                      f'and {num_processes} processes; use a multiple of '
                      f'{max(num_devices, num_processes)} (set --config.batch_size=...)')
