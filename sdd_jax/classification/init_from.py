"""`config.model.init_from`: start a run from weights in torchvision's layout.

`config.model.init_from = 'path/to.safetensors'` (a local path or a gs:// URI; '' = off) loads
the plain network's parameters and BatchNorm statistics from a file written by `python -m
sdd_jax.export` or from a torchvision state_dict saved with `safetensors.torch.save_file`
(e.g. torchvision's ImageNet weights, for fine-tuning), before the first step. A run that
resumes from its own checkpoint keeps the checkpoint, so both fields are resumable (changing
them does not change the config digest). `config.model.init_from_skip_head = True` leaves a
classifier of another class count at its initialisation. Method-owned variables (BYOT's
auxiliary heads, ...) keep their initialisation; DML (two networks) is refused.

Checked before the workdir is touched (`check`): the file exists and is a safetensors file
(float32, float16 or bfloat16: cast to the parameters' dtype), the model has a torchvision
layout, every shape fits a network built for the config's input (`config.data.image_size`,
one channel per `config.data.mean` value: a grayscale run's export loads back into its
config), one line naming the file and every mismatch.
"""
import functools
from typing import Optional

import jax
import numpy as np

from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError
from sdd_jax.models import build
from sdd_jax.models import torchvision_io

FIELDS = ('model.init_from', 'model.init_from_skip_head')


class InitFromError(UserError):
  """config.model.init_from cannot start this run."""


def _path(config) -> str:
  return config.model.get('init_from', '') or ''


def input_shape(config):
  """[1, size, size, channels]: what the config's data feeds the network (channels: one per
  config.data.mean value, which validation holds to the data's)."""
  size = int(config.data.image_size)
  return (1, size, size, len(config.data.mean))


def check(config, where: Optional[str] = None) -> None:
  """Raises a UserError (one line, naming `where`, default `config.model.init_from=<file>`)
  when `config.model.init_from` cannot start this run. Reads only."""
  path = _path(config)
  if not path:
    return
  workdir_path.check_store(path, where.removesuffix(path).rstrip() if where
                           else 'config.model.init_from=')
  where = where or f'config.model.init_from={path}'
  if 'dml' in config.get('methods', {}):
    raise InitFromError(f'{where}: DML trains two networks; start it without init_from')
  model = build.create_model(config)
  torchvision_io.check_exportable(config.model.name, model)
  load(config, model, where)  # the file, then the shapes: one line naming every mismatch


def load(config, model, where: Optional[str] = None):
  """The file's variables {'params', 'batch_stats'} for `model` (host arrays in the
  parameters' dtypes), checked against a target built for the config's input shape."""
  where = where or f'config.model.init_from={_path(config)}'
  arrays, _ = torchvision_io.read(_path(config), where)
  init = functools.partial(model.init, jax.random.key(0),
                           np.zeros(input_shape(config), np.float32), train=False)
  skip_head = bool(config.model.get('init_from_skip_head', False))
  # skip_head keeps the initial classifier, so it needs values; else shapes and dtypes suffice.
  target = jax.device_get(init()) if skip_head else jax.eval_shape(init)
  return torchvision_io.from_torchvision(config.model.name, arrays, target,
                                         skip_head=skip_head, where=where)


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
