"""The bad-input catalogue: each bad input gives one line naming the field or file and what to
change, and leaves an existing workdir byte-identical."""
import hashlib
import os

import numpy as np
import pytest

from configs import common
from sdd_jax import checkpoint
from sdd_jax import config_validation
from sdd_jax import data
from sdd_jax import trainer

USER_ERRORS = (config_validation.ConfigError, data.DataError, trainer.WorkdirError,
               checkpoint.CheckpointError)


def _config():
  config = common.recipe()
  common.smoke(config)
  config.data.synthetic_shape = (16, 16, 3)
  config.data.image_size = 16
  config.data.crop_padding = 2
  config.num_epochs = 1
  config.optim.lr_boundaries = ()
  return config


def _snapshot(root):
  """{relative path: sha256} of every file under `root` (and the folders)."""
  result = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs:
      result[os.path.relpath(os.path.join(folder, name), root) + '/'] = 'dir'
    for name in files:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        result[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
  return result


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


def _images(n=32, size=16):
  return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


# (id, {field: value} or a function of tmp_path returning it, expected message regex)
CASES = [
    ('lr', {'optim.lr': -0.1}, r'config.optim.lr: must be > 0'),
    ('momentum', {'optim.momentum': 1.5}, r'config.optim.momentum: must be in \[0, 1\)'),
    ('boundaries', {'optim.lr_boundaries': (5,)}, r'config.optim.lr_boundaries: must be'),
    ('batch_zero', {'batch_size': 0}, r'config.batch_size: must be an integer >= 1'),
    ('batch_devices', {'batch_size': 12}, r'config.batch_size: 12 does not divide over 8 devices'),
    ('eval_batch_devices', {'eval_batch_size': 20}, r'config.eval_batch_size: 20 does not divide'),
    ('batch_too_big', {'batch_size': 128}, r'the training split has 64 examples, fewer than one global batch of 128; lower '
                                               r'config.batch_size'),
    ('model_name', {'model.name': 'resnet17'}, r"config.model.name: must be one of"),
    ('model_dtype', {'model.dtype': 'int8'}, r'config.model.dtype: must be one of'),
    ('method_name', {'methods.sd_dropuot': {}}, r"config.methods: must be a section per method"),
    ('method_value', {'methods.sd_dropout': {'rate': 1.0}},
     r'config.methods.sd_dropout.rate: must be in \[0, 1\)'),
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
                     match=r"no checkpoint in .* can be read .* or they do not fit this config's "
                           r'model: use a new --workdir \(step \d+: params/.*: stored \(64, 10\), '
                           r'this config \(32, 10\)\)'):
    trainer.train_and_evaluate(_config(), other)
  assert _snapshot(other) == before
