"""validate(config) for `config.task == 'translation'`: every value checked before the workdir
is touched or anything compiles, with one-line `ConfigError`s (field, what is allowed, what
was given), in the style and with the `Field` checker of the image configs
(`config/fields.py`).
"""
from sdd_jax.config.fields import ConfigError, Field, check, nearest
from sdd_jax.train import profiling

DTYPES = ('float32', 'bfloat16')
SOURCES = ('files', 'toy')
METHODS = ('label_smoothing', 'ps_kd')  # the translation methods (losses.py, pskd.py)


def _int(path, low=1, **kw) -> Field:
  return Field(path, 'int', low=low, **kw)


def _number(path, low=None, high=None, **kw) -> Field:
  return Field(path, 'number', low=low, high=high, **kw)


FIELDS = (
    Field('task', 'str', choices=('translation',)), _int('seed', 0), _int('num_epochs'),
    _int('checkpoint_every_epochs'), _int('max_to_keep'), _int('log_every_steps'),
    _int('model.num_encoder_layers'), _int('model.num_decoder_layers'), _int('model.d_model'),
    _int('model.ffn_dim'), _int('model.num_heads'), _int('model.max_len'),
    _number('model.dropout', 0, 1, high_open=True),
    _number('model.attention_dropout', 0, 1, high_open=True),
    _number('model.activation_dropout', 0, 1, high_open=True),
    Field('model.pre_norm', 'bool'), Field('model.share_decoder_embeddings', 'bool'),
    Field('model.dtype', 'str', choices=DTYPES),
    Field('data.source', 'str', choices=SOURCES), Field('data.path', 'str'),
    Field('data.spm_model', 'str'), Field('data.source_lang', 'str'),
    Field('data.target_lang', 'str'), _int('data.vocab_size', 8),
    _int('data.tokens_per_batch'), _int('data.num_buckets'), _int('data.max_len', 2),
    _int('data.toy_train'), _int('data.toy_valid'), _int('data.toy_test'),
    _int('data.toy_seed', 0),
    _number('optim.lr', 0, low_open=True), _number('optim.b1', 0, 1, high_open=True),
    _number('optim.b2', 0, 1, high_open=True), _number('optim.eps', 0, low_open=True),
    _number('optim.weight_decay', 0), _int('optim.warmup_steps', 0),
    _number('optim.clip_norm', 0),
    _int('evals.beam_size'), _number('evals.length_penalty', 0), _number('evals.max_len_a', 0),
    _int('evals.max_len_b'),
)
METHOD_FIELDS = {'label_smoothing': (_number('methods.label_smoothing.epsilon', 0, 1,
                                             high_open=True),),
                 'ps_kd': (_number('methods.ps_kd.alpha', 0, 1),)}
SECTIONS = ('model', 'data', 'optim', 'methods', 'evals')
OPTIONAL = (profiling.FIELD,)  # fields of the shared loop (`train/loop.py`) a config may leave out


def _known(section: str):
  return [f.path.split('.', 1)[1] for f in FIELDS if f.path.startswith(section + '.')]


def _unknown(where: str, keys, known) -> None:
  unknown = sorted(set(keys) - set(known))
  if unknown:
    raise ConfigError(f'config{where}: unknown field(s) {unknown}; known: '
                      f'{", ".join(sorted(known))}{nearest(unknown[0], known)}')


def _get(config, path: str):
  for part in path.split('.'):
    config = config[part]
  return config


def validate(config) -> None:
  """Raises ConfigError on the first bad value of a translation `config`."""
  top = [f.path for f in FIELDS if '.' not in f.path] + list(SECTIONS)
  missing = [k for k in top if k not in config]
  if missing:
    raise ConfigError(f'config: missing field(s) {missing}; start from a translation config '
                      '(configs/iwslt15_pskd.py)')
  _unknown('', config.keys(), top + list(OPTIONAL))
  profiling.check_steps(config.get(profiling.FIELD, ()))  # its end is checked against the run's
  for section in SECTIONS:
    if not hasattr(config[section], 'keys'):
      raise ConfigError(f'config.{section}: must be a section (ConfigDict), got '
                        f'{config[section]!r} (set it in the config file)')
    if section != 'methods':
      _unknown(f'.{section}', config[section].keys(), _known(section))
  _unknown('.methods', config.methods.keys(), METHODS)
  fields = list(FIELDS)
  for name in config.methods:
    _unknown(f'.methods.{name}', config.methods[name].keys(),
             [f.path.rsplit('.', 1)[1] for f in METHOD_FIELDS[name]])
    fields += [f for f in METHOD_FIELDS[name] if f.path.rsplit('.', 1)[1] in config.methods[name]]
  for field in fields:
    missing = _missing(config, field.path)
    if missing:
      raise ConfigError(f'config.{field.path}: missing; set it in the config file')
    check(field, _get(config, field.path))
  model, data = config.model, config.data
  if model.d_model % model.num_heads:
    raise ConfigError(f'config.model.d_model: must be a multiple of model.num_heads '
                      f'({model.num_heads}), got {model.d_model} (set --config.model.d_model=...)')
  if data.max_len + 1 > model.max_len:  # + BOS or EOS
    raise ConfigError(f'config.data.max_len: must be below model.max_len ({model.max_len}), got '
                      f'{data.max_len} (set --config.data.max_len=...)')
  if data.source == 'files' and not data.path:
    raise ConfigError("config.data.path: must name the folder of {train,valid,test}.{src,tgt} "
                      "when data.source is 'files', got '' (set --config.data.path=DIR)")
  if data.tokens_per_batch < data.max_len:
    raise ConfigError(f'config.data.tokens_per_batch: must be at least data.max_len '
                      f'({data.max_len}) so that the longest sentence fits a batch, got '
                      f'{data.tokens_per_batch} (set --config.data.tokens_per_batch=...)')


def _missing(config, path: str) -> bool:
  try:
    _get(config, path)
  except (KeyError, AttributeError):
    return True
  return False
