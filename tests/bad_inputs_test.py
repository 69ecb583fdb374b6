"""The bad-input catalogue: each bad input gives one line naming the field or file and what to
change, and leaves an existing workdir byte-identical.

`CASES` are remembered cases; the rest is generated from the config schema
(`config_schema.all_fields()`: every field with a wrong type, out of range, NaN, inf) and from
the source contracts (every malformed npz member, folder layouts, unreadable images)."""
import math
import os
import re
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs import common
from sdd_jax.workdir import checkpoint
from sdd_jax.config import schema as config_schema
from sdd_jax.config import validation as config_validation
from sdd_jax import data
from sdd_jax import models
from sdd_jax.classification import trainer
from tests import workdirs



def _config():
  config = workdirs.tiny_config()
  config.num_epochs = 1
  return config


def _snapshot(root):
  return workdirs.snapshot(root, folders=True)


USER_ERRORS = (config_validation.ConfigError, data.DataError, trainer.WorkdirError,
               checkpoint.CheckpointError)


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('existing'))
  trainer.train_and_evaluate(_config(), path)
  return path


def _set(config, key, value):
  *parents, last = key.split('.')
  for part in parents:
    config = config[part]
  config[last] = value


def _npz(tmp, name, **arrays):
  folder = os.path.join(tmp, name)
  os.makedirs(folder, exist_ok=True)
  for split in ('train', 'test'):
    np.savez(os.path.join(folder, f'{split}.npz'), **arrays)
  return folder


def _garbage_npz(tmp):
  folder = os.path.join(tmp, 'garbage')
  os.makedirs(folder, exist_ok=True)
  for split in ('train', 'test'):
    with open(os.path.join(folder, f'{split}.npz'), 'wb') as f:
      f.write(b'PK\x03\x04 not really a zip')
  return folder


def _foreign_zip(tmp):
  """A valid zip archive whose members x and y are text files, not .npy arrays."""
  folder = os.path.join(tmp, 'foreign')
  os.makedirs(folder, exist_ok=True)
  for split in ('train', 'test'):
    with zipfile.ZipFile(os.path.join(folder, f'{split}.npz'), 'w') as archive:
      archive.writestr('x', 'not an array')
      archive.writestr('y', '0 1 2')
  return folder


def _images(n=32, size=16):
  return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


# (id, {field: value} or a function of tmp_path returning it, expected message regex)
CASES = [
    ('lr', {'optim.lr': -0.1}, r'config.optim.lr: must be > 0'),
    ('momentum', {'optim.momentum': 1.5}, r'config.optim.momentum: must be in \[0, 1\)'),
    ('boundaries', {'optim.lr_boundaries': (5,)}, r'config.optim.lr_boundaries: must be'),
    ('batch_zero', {'batch_size': 0}, r'config.batch_size: must be an integer >= 1'),
    ('batch_devices', {'batch_size': 12}, r'config.batch_size: 12 does not divide over 8 devices'),
    ('batch_too_big', {'batch_size': 128}, r'the training split has 64 examples, fewer than one global batch of 128; lower '
                                               r'config.batch_size'),
    ('model_name', {'model.name': 'resnet17'}, r"config.model.name: must be one of"),
    ('model_dtype', {'model.dtype': 'int8'}, r'config.model.dtype: must be one of'),
    ('bn_group_divides', {'model.bn_group': 3},
     r'config.model.bn_group: 3 does not divide batch_size=16; use a divisor of the batch'),
    ('bn_group_vit', {'model.name': 'vit_tiny_cifar', 'model.kwargs': {}, 'model.bn_group': 4},
     r'config.model.bn_group: vit_tiny_cifar has no BatchNorm \(LayerNorm only\)'),
    ('method_name', {'methods.sd_dropuot': {}}, r"config.methods: must be a section per method"),
    ('method_value', {'methods.sd_dropout': {'rate': 1.0}},
     r'config.methods.sd_dropout.rate: must be in \[0, 1\)'),
    ('method_eval_masks', {'methods.sd_dropout': {'eval_masks': 0}},
     r'config.methods.sd_dropout.eval_masks: the number of dropout masks the dropout_ensemble '
     r'predictor averages, an integer >= 1, got 0'),
    ('method_field', {'methods.sd_dropout': {'beta': 0.5}},
     r"config.methods.sd_dropout: unknown field\(s\) \['beta'\]"),
    ('evaluator', {'evals.acc': {}}, r'config.evals: must be a section per evaluator'),
    ('source', {'data.source': 'hdf5'}, r'config.data.source: must be one of'),
    ('augment', {'data.augment': 'mixup'}, r'config.data.augment: must be one of'),
    ('mean_std', {'data.mean': (0.5,)}, r'config.data.mean: must be a tuple with one value'),
    ('seed', {'seed': -3}, r'config.seed: must be an integer >= 0'),
    ('npz_missing', lambda tmp: {'data.source': 'npz', 'data.path': os.path.join(tmp, 'nowhere')},
     r'npz source: .*nowhere/train.npz does not exist'),
    ('npz_corrupt', lambda tmp: {'data.source': 'npz', 'data.path': _garbage_npz(tmp)},
     r'npz source: .*garbage/train.npz cannot be read \(\w+\); write it again'),
    ('npz_foreign_zip', lambda tmp: {'data.source': 'npz', 'data.path': _foreign_zip(tmp)},
     r'npz source: .*foreign/train.npz: member x is not a .npy array \(the file is a zip of '
     r'other files, not written by np.savez\); write it with np.savez'),
    ('npz_keys', lambda tmp: {'data.source': 'npz',
                              'data.path': _npz(tmp, 'keys', images=_images())},
     r"npz source: .*keys/train.npz holds \['images'\]; it needs x"),
    ('npz_labels', lambda tmp: {'data.source': 'npz', 'data.path': _npz(
        tmp, 'labels', x=_images(), y=np.arange(32) % 50)},
     r'npz source .* labels span 0..31 but config.data.num_classes is 10; set num_classes'),
    ('folder_missing', lambda tmp: {'data.source': 'folder', 'data.path': str(tmp)},
     r'folder source: .*/train is not a folder'),
    ('tfds_missing', lambda tmp: {'data.source': 'tfds', 'data.name': 'cifar100',
                                  'data.data_dir': str(tmp), 'data.download': False},
     r'tfds build cifar100'),
    ('image_size', {'data.image_size': 24}, r'images are 16x16 but config.data.image_size is 24'),
    ('other_config', {'optim.lr': 0.05}, r'holds a run of a different config \(optim.lr: 0.1 -> '
                                          r'0.05\); use a new --workdir'),
]


@pytest.mark.parametrize('name,change,message', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_the_workdir_byte_identical(workdir, tmp_path, name,
                                                                     change, message):
  del name
  config = _config()
  for key, value in (change(str(tmp_path)) if callable(change) else change).items():
    _set(config, key, value)
  before = _snapshot(workdir)
  with pytest.raises(USER_ERRORS, match=message) as info:
    trainer.train_and_evaluate(config, workdir)
  assert '\n' not in str(info.value)
  assert _snapshot(workdir) == before


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
  path = tmp_path / 'file'
  path.write_bytes(b'keep me')
  with pytest.raises(trainer.WorkdirError, match=r'is a file; give a directory path'):
    trainer.train_and_evaluate(_config(), str(path))
  assert path.read_bytes() == b'keep me'


def test_checkpoints_of_another_model_are_refused_and_kept(workdir, tmp_path):
  """A workdir whose config.json matches but whose checkpoints hold another network (e.g.
  copied in by hand) fails with one line and moves nothing."""
  import shutil  # pylint: disable=import-outside-toplevel
  other = str(tmp_path / 'other')
  shutil.copytree(workdir, other)
  wider = _config()
  wider.model.kwargs = dict(wider.model.kwargs, width=8)
  alien = str(tmp_path / 'alien')
  trainer.train_and_evaluate(wider, alien)
  shutil.rmtree(os.path.join(other, 'checkpoints'))
  shutil.copytree(os.path.join(alien, 'checkpoints'), os.path.join(other, 'checkpoints'))
  os.remove(os.path.join(other, 'summary.json'))
  before = _snapshot(other)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"the checkpoints in .* hold another model than this config's "
                           r'\(step \d+: params/.*: stored \(64, 10\), this config \(32, 10\).*\): '
                           r'use a new --workdir, or the config they were trained with'):
    trainer.train_and_evaluate(_config(), other)
  assert _snapshot(other) == before


# ---------------------------------------------------------------------------------------------
# The generated catalogue: every schema field with a wrong type, out of range, NaN and inf;
# every model.kwargs option; every source contract with each malformed content. Each case goes
# through `trainer.train_and_evaluate` on the existing workdir: one line, the right UserError,
# the field or file named, and the workdir byte-identical.


WRONG_TYPE = {'int': ('seven', 2.5, True), 'number': ('abc', True, None), 'bool': ('yes', 1),
              'str': (3, None), 'strings': (3, (1, 2)), 'tuple': ('abc', 5)}


def bad_values(field):
  """[(label, value)] that `field` must refuse, derived from its kind and bounds alone."""
  out = [(f'type:{value!r}', value) for value in WRONG_TYPE.get(field.kind, ())
         if not (value is None and field.optional)]
  numeric = field.kind == 'number' or (field.kind == 'tuple' and field.item == 'number')
  wrap = ((lambda v: (v,) * min(field.lengths or (1,))) if field.kind == 'tuple'
          else (lambda v: v))
  if field.kind in ('int', 'number') or (field.kind == 'tuple' and field.item in ('int',
                                                                                 'number')):
    step = 1 if 'int' in (field.kind, field.item) else 0.5
    if field.low is not None:
      out.append(('below', wrap(field.low if field.low_open else field.low - step)))
    if field.high is not None:
      out.append(('above', wrap(field.high if field.high_open else field.high + step)))
  if field.kind == 'tuple' and field.lengths:
    out.append(('length', (1,) * (max(field.lengths) + 1)))
  if field.choices is not None:
    out.append(('choice', 'not_a_choice'))
  if numeric:
    out += [('nan', wrap(math.nan)), ('inf', wrap(math.inf)), ('-inf', wrap(-math.inf))]
  return out


def _model_for(path):
  """A registered model that takes the model.kwargs option at `path`."""
  for name in models.MODELS.names():
    if any(f.path == path for f in config_schema.model_kwarg_fields(name)):
      return name
  raise AssertionError(path)


def _with_value(field, value):
  """The smoke config with `value` at `field.path` (built from a dict, as a config file or a
  config.json can: ConfigDict's own type safety would refuse some values on assignment)."""
  tree = _config().to_dict()
  parts = field.path.split('.')
  if parts[0] == 'methods':
    tree['methods'] = {parts[1]: {parts[2]: value}}
  elif parts[0] == 'evals':
    tree['evals'] = {parts[1]: {parts[2]: value}}
  elif parts[:2] == ['model', 'kwargs']:
    tree['model']['name'] = _model_for(field.path)
    tree['model']['kwargs'] = {parts[2]: value}
  else:
    node = tree
    for part in parts[:-1]:
      node = node[part]
    node[parts[-1]] = value
  return ml_collections.ConfigDict(tree)


SCHEMA_CASES = [(f, label, value) for f in config_schema.all_fields() if f.kind != 'any'
                for label, value in bad_values(f)]


def _check_refused(config, workdir, error, message):
  before = _snapshot(workdir)
  with pytest.raises(error, match=message) as info:
    trainer.train_and_evaluate(config, workdir)
  assert '\n' not in str(info.value)
  assert _snapshot(workdir) == before
  return str(info.value)


@pytest.mark.parametrize('field,label,value', SCHEMA_CASES,
                         ids=[f'{f.path}-{label}' for f, label, _ in SCHEMA_CASES])
def test_every_schema_field_refuses_bad_values(workdir, field, label, value):
  del label
  _check_refused(_with_value(field, value), workdir, config_validation.ConfigError,
                 rf'^config\.{re.escape(field.path)}: must be .*, got ')


def test_the_catalogue_covers_every_field_kind_and_bound():
  """The generator is not vacuous: every static field, method field, evaluator field and
  model.kwargs option has cases, and every numeric field gets NaN and inf."""
  paths = {f.path for f, _, _ in SCHEMA_CASES}
  assert {f.path for f in config_schema.STATIC if f.kind != 'any'} <= paths
  assert {'methods.sd_dropout.rate', 'methods.byot.bottleneck', 'evals.odin.temperature',
          'evals.odin.sets', 'model.kwargs.width', 'model.kwargs.growth_rate'} <= paths
  labels = {(f.path, label) for f, label, _ in SCHEMA_CASES}
  for path in ('optim.lr', 'probe.rate', 'methods.sd_dropout.temperature', 'data.std'):
    assert {(path, 'nan'), (path, 'inf'), (path, '-inf')} <= labels
  assert ('optim.momentum', 'above') in labels and ('seed', 'below') in labels


MODEL_KWARGS = [
    ('resnet18_cifar', {'widht': 4}, r"config.model.kwargs: resnet18_cifar takes no option\(s\) "
                                     r"\['widht'\]; its options: .*; did you mean width\?"),
    ('densenet121_cifar', {'width': 4},
     r"config.model.kwargs: densenet121_cifar takes no option\(s\) \['width'\]"),
    ('resnet18_cifar', {'dtype': 'float32'}, r"takes no option\(s\) \['dtype'\]"),
    ('resnet18_cifar', {'stage_sizes': (1, 0, 1, 1)}, r'config.model.kwargs.stage_sizes: must be'),
]


@pytest.mark.parametrize('model,kwargs,message', MODEL_KWARGS,
                         ids=[str(k) for _, k, _ in MODEL_KWARGS])
def test_model_kwargs_are_checked_against_the_constructor(workdir, model, kwargs, message):
  tree = _config().to_dict()
  tree['model'].update(name=model, kwargs=kwargs)
  _check_refused(ml_collections.ConfigDict(tree), workdir, config_validation.ConfigError,
                 message)


# What an evaluator asks of its section beyond the types (`Evaluator.check_section`): refused
# at validation, not when the evaluator first runs (after an epoch and a checkpoint).
EVAL_SECTIONS = [
    ('odin', {'sets': ('svhn', 'nope')}, r"config.evals.odin.sets: unknown OOD set 'nope'"),
    ('odin', {'sets': ('svhn', 'svhn')}, r'config.evals.odin.sets: the names .* repeat'),
    ('odin', {'temperature': -1.0}, r'config.evals.odin: need temperature > 0'),
    ('odin', {'max_examples': 0}, r'config.evals.odin: need .* max_examples >= 1'),
    ('corruption', {'corruptions': ('fog', 'smog')},
     r"config.evals.corruption.corruptions: unknown \['smog'\]"),
    ('corruption', {'corruptions': ()}, r'config.evals.corruption.corruptions: unknown \(empty\)'),
    ('corruption', {'dataset': 'imagenet_c'}, r'config.evals.corruption.dataset: must be one of'),
    ('fgsm', {'paper_epsilons': (-0.1,)}, r'config.evals.fgsm: ε must be >= 0, got -0.1 \(paper\)'),
    ('temperature', {'fit_split': 'test'},
     r"config.evals.temperature.fit_split: must not read the eval split 'test'"),
    # A section's type, predictor and split (evaluators/sections.py).
    ('acc2', {'type': 'acuracy'}, r"config.evals.acc2.type: must be one of \[.*\] \(the evaluator "
                                  r"to run\), got 'acuracy'; did you mean accuracy\?"),
    ('accuracy', {'pred': 'net1'}, r"config.evals.accuracy.pred: must be '' \(the network\) \(the "
                                   r"configured methods add no other predictor\), got 'net1'"),
    ('calibration', {'split': 'val'}, r"config.evals.calibration.split: must be '' \(the eval "
                                      r"split\), 'train' \(data.train_split\) or 'test'"),
]


@pytest.mark.parametrize('name,section,message', EVAL_SECTIONS,
                         ids=[f'{n}-{sorted(s)[0]}' for n, s, _ in EVAL_SECTIONS])
def test_evaluator_sections_are_checked_before_the_workdir(workdir, name, section, message):
  config = _config()
  config.evals[name] = section
  _check_refused(config, workdir, config_validation.ConfigError, message)


def _split_arrays(n=32, size=16, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  shape = (n, size, size) + ((channels,) if channels else ())
  return rng.integers(0, 255, shape, dtype=np.uint8), np.arange(n) % 10


def _npz_splits(tmp, train=None, test=None):
  """train.npz / test.npz under tmp/npz: valid unless `train`/`test` ({member: array}) change
  them."""
  folder = os.path.join(tmp, 'npz')
  os.makedirs(folder, exist_ok=True)
  for split, change in (('train', train), ('test', test)):
    x, y = _split_arrays(seed=split == 'test')
    np.savez(os.path.join(folder, f'{split}.npz'), **{'x': x, 'y': y, **(change or {})})
  return folder


_X, _Y = _split_arrays()
# (id, split whose file is bad, {member: content}, expected message after the file name)
NPZ_CONTENTS = [
    ('x_float', 'train', {'x': _X / 255.0}, r'images must be uint8 .*got float64'),
    ('x_int64', 'test', {'x': _X.astype(np.int64)}, r'images must be uint8 .*got int64'),
    ('x_rank2', 'train', {'x': _X.reshape(32, -1)}, r'images must be uint8 .*\[32, 768\]'),
    ('x_rank5', 'train', {'x': _X[:, None]}, r'images must be uint8 .*\[32, 1, 16, 16, 3\]'),
    ('x_object', 'train', {'x': np.array([None] * 32, dtype=object)},
     r'member x is an object array \(pickled'),
    ('y_object', 'test', {'y': np.array([{'a': 1}] * 32, dtype=object)},
     r'member y is an object array'),
    ('y_strings', 'train', {'y': np.array(['cat', 'dog'] * 16)},
     r"labels are <U3 \(e.g. 'cat'\) but must be class indices"),
    ('y_one_hot', 'train', {'y': np.eye(10)[_Y]},
     r'labels must be class indices int \[N\], got shape \[32, 10\]; they look one-hot'),
    ('y_fractional', 'train', {'y': _Y + 0.25}, r'label 0 is 0.25, not a whole number'),
    ('y_nan', 'test', {'y': np.where(_Y == 3, np.nan, _Y)}, r'label 3 is nan, not a whole'),
    ('y_negative', 'test', {'y': _Y - 1}, r'labels span -1..8 but config.data.num_classes'),
    ('y_too_big', 'test', {'y': _Y + 1}, r'labels span 1..10 but config.data.num_classes is 10'),
    ('y_bool', 'train', {'y': _Y > 4}, r'labels are bool but must be class indices'),
    ('y_scalar', 'train', {'y': np.int64(3)}, r'got shape \[\]'),
    ('y_short', 'train', {'y': _Y[:31]}, r'32 images but 31 labels'),
    ('test_empty', 'test', {'x': _X[:0], 'y': _Y[:0]}, r"the eval split 'test' .* has no examples"),
    ('test_size', 'test', {'x': _split_arrays(size=24)[0]},
     r"the eval split 'test' .*: images are 24x24 but config.data.image_size is 16"),
    ('test_channels', 'test', {'x': _split_arrays(channels=1)[0]},
     r"the eval split 'test' .*: images have 1 channels but config.data.mean/std have 3/3"),
    ('train_gray', 'train', {'x': _split_arrays(channels=0)[0]},
     r"the train split 'train' .*: images have 1 channels"),
]


@pytest.mark.parametrize('name,split,change,message', NPZ_CONTENTS,
                         ids=[c[0] for c in NPZ_CONTENTS])
def test_every_malformed_npz_content_is_one_line(workdir, tmp_path, name, split, change,
                                                  message):
  del name
  config = _config()
  config.data.source, config.data.path = 'npz', _npz_splits(
      str(tmp_path), **{split: change})
  text = _check_refused(config, workdir, data.DataError, message)
  assert f'{split}.npz' in text or f"'{split}'" in text


def test_float_labels_that_are_whole_numbers_are_accepted(tmp_path):
  source = data.create_source(
      ml_collections.ConfigDict(dict(common.data_config(
          source='npz', path=_npz_splits(str(tmp_path), train={'y': _Y.astype(np.float32)}),
          num_classes=10))), 'train')
  assert source.labels().dtype == np.int64
  np.testing.assert_array_equal(source.labels(), np.arange(32) % 10)


def _png(path, value=0, size=16):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _folder_splits(tmp, test_classes=None, per_class=2):
  root = os.path.join(tmp, 'folder')
  for split, classes in (('train', None), ('test', test_classes)):
    for c, name in enumerate(classes or [f'class{i}' for i in range(10)]):
      for i in range(per_class):
        _png(os.path.join(root, split, name, f'{i}.png'), 10 * c + i)
  return root


def _folder_config(root):
  config = _config()
  config.data.source, config.data.path = 'folder', root
  config.data.num_examples = 0
  return config


def test_folder_splits_with_other_class_names_are_refused(workdir, tmp_path):
  names = [f'class{i}' for i in range(10)]
  names[4] = 'klass4'
  root = _folder_splits(str(tmp_path), test_classes=names)
  _check_refused(_folder_config(root), workdir, data.DataError,
                 r"folder source: class folder 'class4' of train is not in test, which has 'klass4' "
                 r'instead; the splits must have the same class folder names')


@pytest.mark.parametrize('content', [b'not an image at all', b''], ids=['text', 'empty'])
def test_a_file_that_is_not_an_image_is_refused_before_training(workdir, tmp_path, content):
  root = _folder_splits(str(tmp_path))
  bad = os.path.join(root, 'test', 'class3', '1.png')
  with open(bad, 'wb') as f:
    f.write(content)
  _check_refused(_folder_config(root), workdir, data.DataError,
                 rf'folder source: {re.escape(bad)} is not an image')


def test_a_corrupt_image_found_mid_run_is_one_line_and_keeps_the_checkpoint(tmp_path, capfd):
  """A PNG whose header is fine but whose pixels are cut off is only found when read: here in
  the first evaluation, after the epoch's checkpoint; the error is one line naming the file
  (raised in grain's prefetch thread) and the checkpoint stays, so the run resumes once the
  file is replaced."""
  root = _folder_splits(str(tmp_path))
  bad = os.path.join(root, 'test', 'class1', '1.png')  # eval index 3: not a sampled one
  with open(bad, 'rb') as f:
    png = f.read()
  with open(bad, 'wb') as f:
    f.write(png[:len(png) // 2])
  config = _folder_config(root)
  workdir = str(tmp_path / 'run')
  with pytest.raises(data.DataError,
                     match=rf'folder source: {re.escape(bad)} cannot be read as an image') as info:
    trainer.train_and_evaluate(config, workdir)
  assert '\n' not in str(info.value)
  assert 'Traceback' not in capfd.readouterr().err  # nothing printed by the prefetch thread
  steps = os.listdir(os.path.join(workdir, 'checkpoints'))
  assert steps == ['1'], steps  # 20 images, batch 16: one step, checkpointed before evaluating
  _png(bad, 11)
  summary = trainer.train_and_evaluate(config, workdir)
  assert summary['steps'] == 1 and summary['test/count'] == 20
