"""validate(): each bad value gives one line naming the field and what is allowed."""
import pytest

from configs import common
from sdd_jax.config import validation as config_validation


def _set(config, key, value):
  *path, last = key.split('.')
  for part in path:
    config = config[part]
  config[last] = value


BAD = [
    ('seed', -1, r'config.seed: must be an integer >= 0, got -1'),
    ('batch_size', 0, r'config.batch_size: must be an integer >= 1, got 0'),
    ('num_epochs', 0, r'config.num_epochs: must be an integer >= 1, got 0'),
    ('model.name', 'resnet19', r"config.model.name: must be one of \[.*'resnet18_cifar'"),
    ('model.dtype', 'float8', r"config.model.dtype: must be one of \('float32', 'bfloat16'"),
    ('model.head_hidden', (0,), r'config.model.head_hidden: must be a tuple of positive'),
    ('data.source', 'ftp', r"config.data.source: must be one of \[.*'npz'"),
    ('data.augment', 'autoaugment', r"config.data.augment: must be one of \('cifar'"),
    ('data.mean', (0.5, 0.5), r'config.data.mean: must be a tuple with one value per channel'),
    ('data.std', (0.2, 0.0, 0.2), r'config.data.std: must be positive numbers'),
    ('data.crop_padding', -1, r'config.data.crop_padding: must be an integer >= 0'),
    ('optim.lr', 0.0, r'config.optim.lr: must be > 0, got 0.0 \(set --config.optim.lr=...\)'),
    ('optim.momentum', 1.0, r'config.optim.momentum: must be in \[0, 1\)'),
    ('optim.weight_decay', -1e-4, r'config.optim.weight_decay: must be >= 0'),
    ('optim.lr_boundaries', (150, 100), r'config.optim.lr_boundaries: must be increasing epochs'),
    ('optim.lr_boundaries', (250,), r'inside \(0, num_epochs=200\)'),
    ('optim.lr_decay', 0.0, r'config.optim.lr_decay: must be in \(0, 1\]'),
    ('methods.sd_dropout', {'rate': 1.5}, r'config.methods.sd_dropout.rate: must be in \[0, 1\)'),
    ('methods.sd_dropout', {'direction': 'up'}, r'config.methods.sd_dropout.direction: must be'),
    ('methods.sd_dropout', {'temp': 3}, r"config.methods.sd_dropout: unknown field\(s\) \['temp'\]"),
    ('methods.cskd', {}, r"config.methods: must be a section per method, named one of \[.*'sd_dropout'\], got 'cskd'"),
    ('evals.acuracy', {}, r"config.evals: must be a section per evaluator, named one of"),
    ('evals.fgsm', {'epsilon': 0.1}, r"config.evals.fgsm: unknown field\(s\) \['epsilon'\]; known: "),
    ('checkpoint_every_epochs', 0, r'config.checkpoint_every_epochs: must be an integer >= 1'),
]


@pytest.mark.parametrize('key,value,message', BAD, ids=[f'{k}={v}' for k, v, _ in BAD])
def test_bad_value_names_the_field(key, value, message):
  config = common.recipe()
  _set(config, key, value)
  with pytest.raises(config_validation.ConfigError, match=message) as info:
    config_validation.validate(config)
  assert '\n' not in str(info.value)


def test_the_recipe_is_valid_and_unknown_fields_are_named():
  config = common.recipe()
  config_validation.validate(config)
  config.lr = 0.1
  with pytest.raises(config_validation.ConfigError, match=r"config: unknown field\(s\) \['lr'\]"):
    config_validation.validate(config)


METHOD_PROBLEMS = [
    ({'cs_kd': {}, 'ddgsd': {}},
     r'config.methods: cs_kd \+ ddgsd cannot be combined: each changes what goes through the '
     r'network \(cs_kd: anchors \+ class partners as one batch; ddgsd: two augmented views as '
     r'one batch\); keep one of them'),
    ({'label_smoothing': {}, 'ps_kd': {}},
     r'config.methods: label_smoothing \+ ps_kd cannot be combined: both replace the '
     r'cross-entropy targets'),
    ({'dml': {}, 'ps_kd': {}},
     r"config.methods: ps_kd \+ dml cannot be combined: ps_kd's table holds one network's past "
     r'predictions and dml trains two'),
    ({'byot': {'kl_weight': -1.0}}, r'config.methods.byot.kl_weight: must be >= 0'),
    ({'ps_kd': {'weight': 0.5}}, r'config.methods.ps_kd.weight: ps_kd adds no weighted term'),
]


@pytest.mark.parametrize('methods,message', METHOD_PROBLEMS,
                         ids=['+'.join(m) for m, _ in METHOD_PROBLEMS])
def test_impossible_method_combinations_say_which_and_why(methods, message):
  config = common.recipe()
  config.methods = methods
  with pytest.raises(config_validation.ConfigError, match=message) as info:
    config_validation.validate(config)
  assert '\n' not in str(info.value)


def test_unmet_method_needs_name_the_fix():
  config = common.recipe()
  config.methods.ddgsd = {}
  config.data.crop_padding, config.data.flip = 0, False
  with pytest.raises(config_validation.ConfigError,
                     match=r'config.methods.ddgsd: ddgsd needs two differently augmented views'):
    config_validation.validate(config)


@pytest.mark.parametrize('methods', [
    {'sd_dropout': {}, 'cs_kd': {}}, {'sd_dropout': {}, 'ps_kd': {}, 'byot': {}},
    {'label_smoothing': {}, 'dml': {}, 'sd_dropout': {}}, {'ps_kd': {}, 'ddgsd': {}},
    {'label_smoothing': {}, 'cs_kd': {}}])
def test_combinations_that_make_sense_validate(methods):
  config = common.recipe()
  config.methods = methods
  config_validation.validate(config)
