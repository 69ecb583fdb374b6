"""`config.model.init_from`: start a run from weights in torchvision's layout.

`config.model.init_from = 'path/to.safetensors'` (a local path or a gs:// URI; '' = off) loads
the plain network's parameters and BatchNorm statistics from a file written by `python -m
sdd_jax.export` or from a torchvision state_dict saved with `safetensors.torch.save_file`
(e.g. torchvision's ImageNet weights, for fine-tuning), before the first step. A run that
resumes from its own checkpoint keeps the checkpoint, so both fields are resumable (changing
them does not change the config digest). `config.model.init_from_skip_head = True` leaves a
classifier of another class count at its initialisation. Method-owned variables (BYOT's
auxiliary heads, ...) keep their initialisation; DML (two networks) is refused.

Checked before the workdir is touched (`check`): the file exists, the model has a torchvision
layout, every shape fits (one line naming the mismatches).
"""
import jax
import numpy as np

from sdd_jax import workdir_path
from sdd_jax.errors import UserError
from sdd_jax.models import build
from sdd_jax.models import torchvision_io

FIELDS = ('model.init_from', 'model.init_from_skip_head')


class InitFromError(UserError):
  """config.model.init_from cannot start this run."""


def _path(config) -> str:
  return config.model.get('init_from', '') or ''


def check(config) -> None:
  """Raises a UserError (one line) when `config.model.init_from` cannot start this run."""
  path = _path(config)
  if not path:
    return
  workdir_path.check_store(path, 'config.model.init_from=')
  if 'dml' in config.get('methods', {}):
    raise InitFromError(f'config.model.init_from={path}: DML trains two networks; start it '
                        'without init_from')
  if not workdir_path.path(path).is_file():
    raise InitFromError(f'config.model.init_from={path}: no such file; give a .safetensors file '
                        'written by python -m sdd_jax.export (or safetensors.torch.save_file)')
  model = build.create_model(config)
  torchvision_io.check_exportable(config.model.name, model)
  load(config, model)  # shapes: one line naming every mismatch


def load(config, model):
  """The file's variables {'params', 'batch_stats'} for `model` (host arrays)."""
  arrays, _ = torchvision_io.read(_path(config))
  target = jax.device_get(model.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32),
                                     train=False))
  return torchvision_io.from_torchvision(
      config.model.name, arrays, target,
      skip_head=bool(config.model.get('init_from_skip_head', False)),
      where=f'config.model.init_from={_path(config)}')


def apply(config, model, state):
  """`state` with the network's variables replaced by the file's (unchanged when init_from is
  off); call at step 0 only."""
  if not _path(config):
    return state
  loaded = load(config, model)
  params = {**state.params, **loaded['params']}
  batch_stats = {**state.batch_stats, **loaded.get('batch_stats', {})}
  placed = jax.device_put((params, batch_stats),
                          jax.tree.map(lambda a: a.sharding, (state.params, state.batch_stats)))
  return state.replace(params=placed[0], batch_stats=placed[1])
