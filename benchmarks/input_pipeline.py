r"""Examples/s of the training input pipeline against what the train step consumes.

  python benchmarks/input_pipeline.py --batch 128 --steps 100 [--npz ../shared/data/cifar10]

Measures `TrainLoader.iterate` (CIFAR augmentation, normalisation, background prefetch) on
CIFAR-shaped data (the real CIFAR-10 copy if `--npz` is given, synthetic otherwise), for plain
batches, `views=2` (DDGSD) and `pairs=True` (CS-KD); then the SD-Dropout train step's
consumption for `--model` at the same batch on this machine. The pipeline keeps up when its
rate exceeds the step's.
"""
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

from configs import common
from sdd_jax import data
from sdd_jax import methods as methods_lib
from sdd_jax import models
from sdd_jax import optim
from sdd_jax import parallel
from sdd_jax import state as state_lib
from sdd_jax import step as step_lib

_BATCH = flags.DEFINE_integer('batch', 128, 'Global batch size.')
_STEPS = flags.DEFINE_integer('steps', 100, 'Batches to time per variant.')
_NPZ = flags.DEFINE_string('npz', '', 'Folder with train.npz (e.g. ../shared/data/cifar10).')
_MODEL = flags.DEFINE_string('model', 'resnet18_cifar', 'Model whose step consumption is shown.')
_STEP_COUNT = flags.DEFINE_integer('train_steps', 3, 'Timed train steps (0: skip).')
_WORKERS = flags.DEFINE_integer('num_workers', 1, 'Pipeline threads.')


def _data_config():
  config = common.data_config('cifar10', num_classes=10, num_workers=_WORKERS.value, prefetch=4)
  if _NPZ.value:
    config.update(source='npz', path=_NPZ.value)
  else:
    config.update(source='synthetic', num_examples=50_000, synthetic_shape=(32, 32, 3))
  return config


def _pipeline_rate(source, config, **options) -> float:
  loader = data.TrainLoader(source, config, global_batch=_BATCH.value, seed=0, **options)
  batches = loader.iterate(0)
  next(batches)  # threads started, first batch built
  start = time.time()
  for _ in range(_STEPS.value):
    next(batches)
  return _STEPS.value * _BATCH.value / (time.time() - start)


def _step_rate(num_classes: int) -> float:
  mesh = parallel.create_mesh()
  model = models.get_model(_MODEL.value, num_classes=num_classes)
  config = common.recipe()
  schedule = optim.make_lr_schedule(config.optim, 391)
  tx = optim.make_optimizer(config.optim, schedule)
  rng = np.random.default_rng(0)
  batch = parallel.to_global({
      'images': rng.normal(size=(_BATCH.value, 32, 32, 3)).astype(np.float32),
      'labels': rng.integers(0, num_classes, _BATCH.value).astype(np.int32)}, mesh)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx),
                  out_shardings=parallel.replicated_sharding(mesh))(
                      state_lib.init_key(0), batch['images'][:1])
  step_fn = step_lib.make_train_step(
      model, tx, methods_lib.create_methods({'sd_dropout': dict(common.SD_DROPOUT)}), seed=0,
      lr_schedule=schedule, mesh=mesh)
  state, metrics = step_fn(state, batch)
  jax.block_until_ready(metrics)
  start = time.time()
  for _ in range(_STEP_COUNT.value):
    state, metrics = step_fn(state, batch)
  jax.block_until_ready((state, metrics))
  return _STEP_COUNT.value * _BATCH.value / (time.time() - start)


def main(argv):
  del argv
  config = _data_config()
  source = data.create_source(config, 'train')
  print(f'source: {config.source} ({len(source)} examples), batch {_BATCH.value}, '
        f'{_WORKERS.value} worker thread(s), {os.cpu_count()} CPU cores')
  for name, options in (('plain', {}), ('views=2 (ddgsd)', {'views': 2}),
                        ('pairs (cs_kd)', {'pairs': True})):
    print(f'pipeline {name:<18} {_pipeline_rate(source, config, **options):>10.0f} examples/s',
          flush=True)
  if _STEP_COUNT.value:
    print(f'train step {_MODEL.value} + sd_dropout {_step_rate(10):>8.0f} examples/s '
          f'({jax.device_count()} x {jax.devices()[0].device_kind})')


if __name__ == '__main__':
  app.run(main)
