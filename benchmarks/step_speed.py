r"""Images/s of the train step for CE and for each method configuration, interleaved in one
process so that machine noise hits every variant alike; prints each ratio to CE.

  python benchmarks/step_speed.py --model resnet18_cifar --batch 128 --rounds 5
  python benchmarks/step_speed.py --batch 32 --rounds 3 --steps 2 --variants=dml,byot

Variants: CE, every registered method alone and with SD-Dropout (weight 0.1), and Table 11's
standard-dropout baselines (`feature_dropout`, `feature_dropout_equal_steps`); `--variants`
picks some (CE always runs: the ratios are to it). The batch carries every key a method may need
(`index`, `second_view`, `pair_images`), so CS-KD and DDGSD forward 2B images per step.

Every variant is compiled first; then each round times `--steps` steps of every variant in
turn. Reported: median images/s over rounds, its ratio to CE's, and the step time as a
multiple of CE's (the inverse: same global batch of B anchors / examples per step). Each timed
step sends its host batch to the devices (`parallel.to_global`), as the trainer does.

The batch is uint8 pixels, normalised inside the step (`data.make_normalize_fn`), as in
training. `--compare_input` adds, for each variant, the path before uint8 batches
(`<variant>@float32`): the same pixels normalised on the host with NumPy (`augment.normalize`,
done ahead, as the old pipeline did in its threads) and sent as float32 [4x the bytes].

  python benchmarks/step_speed.py --variants=sd_dropout --compare_input --rounds 7
"""
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from configs import common
from sdd_jax import data
from sdd_jax import methods as methods_lib
from sdd_jax import models
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from sdd_jax.data import augment

_MODEL = flags.DEFINE_string('model', 'resnet18_cifar', 'Registered model name.')
_BATCH = flags.DEFINE_integer('batch', 128, 'Global batch size.')
_IMAGE = flags.DEFINE_integer('image_size', 32, 'Image side.')
_CLASSES = flags.DEFINE_integer('classes', 100, 'Number of classes.')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'Timed rounds.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Steps per variant per round.')
_DTYPE = flags.DEFINE_string('dtype', 'float32', 'Compute dtype.')

# name -> config.methods: every registered method alone, and with SD-Dropout (weight 0.1).
VARIANTS = {
    'ce': {},
    'sd_dropout': {'sd_dropout': dict(common.SD_DROPOUT)},
    'cs_kd': {'cs_kd': dict(common.CS_KD)},
    'ps_kd': {'ps_kd': dict(common.PS_KD)},
    'ddgsd': {'ddgsd': dict(common.DDGSD)},
    'byot': {'byot': dict(common.BYOT)},
    'dml': {'dml': dict(common.DML)},
    'label_smoothing': {'label_smoothing': dict(common.LABEL_SMOOTHING)},
}
VARIANTS.update({f'{name}+sd_dropout': {**VARIANTS[name],
                                        'sd_dropout': dict(common.SD_DROPOUT_COMBINED)}
                 for name in list(VARIANTS) if name not in ('ce', 'sd_dropout')})
# Table 11's baselines: standard dropout before the head, and its equal-steps variant.
VARIANTS.update({'feature_dropout': {'feature_dropout': {'rate': 0.5}},
                 'feature_dropout_equal_steps': {'feature_dropout': {'rate': 0.5, 'samples': 2}}})
_ONLY = flags.DEFINE_list('variants', None, 'Variants to time (default: all); ce is always run.')
_COMPARE_INPUT = flags.DEFINE_bool('compare_input', False, 'Also time each variant on float32 '
                                   'batches normalised on the host (the path before uint8).')
STEPS_PER_EPOCH = 391


def build(method_config, model, mesh, images, normalize_fn):
  config = common.recipe()
  schedule = optim.make_lr_schedule(config.optim, steps_per_epoch=STEPS_PER_EPOCH)
  tx = optim.make_optimizer(config.optim, schedule)
  methods = methods_lib.create_methods(method_config)
  run = methods_lib.RunInfo(num_examples=STEPS_PER_EPOCH * _BATCH.value,
                            num_classes=_CLASSES.value, steps_per_epoch=STEPS_PER_EPOCH,
                            num_epochs=config.num_epochs, num_devices=mesh.devices.size)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx, methods=methods,
                                    run=run),
                  out_shardings=state_lib.shardings(mesh, methods))(
                      state_lib.init_key(0), images[:1])
  step_fn = step_lib.make_train_step(model, tx, methods, seed=0, lr_schedule=schedule,
                                     mesh=mesh, run=run, normalize_fn=normalize_fn)
  return state, step_fn


def main(argv):
  del argv
  mesh = parallel.create_mesh()
  model = models.get_model(_MODEL.value, num_classes=_CLASSES.value,
                           dtype=jnp.dtype(_DTYPE.value))
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (_BATCH.value, _IMAGE.value, _IMAGE.value, 3), np.uint8)
  host_batch = {  # every key a method may need; each variant takes its own
      'images': pixels,
      'labels': rng.integers(0, _CLASSES.value, _BATCH.value).astype(np.int32),
      'index': np.arange(_BATCH.value, dtype=np.int32),
      'second_view': pixels[:, :, ::-1].copy(),
      'pair_images': np.roll(pixels, 1, axis=0)}
  data_config = common.data_config('cifar100')
  start = time.time()
  float_batch = {k: augment.normalize(v, data_config.mean, data_config.std)
                 if k in data.IMAGE_KEYS else v for k, v in host_batch.items()}
  host_seconds = time.time() - start
  inputs = {'': (host_batch, data.make_normalize_fn(data_config, _DTYPE.value))}
  if _COMPARE_INPUT.value:
    inputs['@float32'] = (float_batch, None)
  sample = jnp.zeros((1, _IMAGE.value, _IMAGE.value, 3), jnp.float32)
  runners = {}
  variants = {name: VARIANTS[name] for name in ['ce'] + (_ONLY.value or list(VARIANTS))}
  for name, method_config in variants.items():
    for suffix, (batch, normalize_fn) in inputs.items():
      state, step_fn = build(method_config, model, mesh, sample, normalize_fn)
      start = time.time()
      state, metrics = step_fn(state, parallel.to_global(batch, mesh))
      jax.block_until_ready(metrics)
      print(f'{name}{suffix}: compiled and ran one step in {time.time() - start:.1f} s',
            flush=True)
      runners[name + suffix] = [state, step_fn, batch]
  rates = {name: [] for name in runners}
  for _ in range(_ROUNDS.value):
    for name, runner in runners.items():
      state, step_fn, batch = runner
      start = time.time()
      for _ in range(_STEPS.value):
        state, metrics = step_fn(state, parallel.to_global(batch, mesh))
      jax.block_until_ready((state, metrics))
      rates[name].append(_STEPS.value * _BATCH.value / (time.time() - start))
      runner[0] = state
  base = np.median(rates['ce'])
  print(f'\n{_MODEL.value}, batch {_BATCH.value}, {_IMAGE.value}px, {_DTYPE.value}, '
        f'{jax.device_count()} x {jax.devices()[0].device_kind}, '
        f'{_ROUNDS.value} rounds x {_STEPS.value} steps')
  print(f'{"variant":<28}{"images/s (median)":>18}{"min":>10}{"max":>10}{"ratio to CE":>13}'
        f'{"step time / CE":>16}')
  for name, values in rates.items():
    median = np.median(values)
    print(f'{name:<28}{median:>18.1f}{min(values):>10.1f}{max(values):>10.1f}'
          f'{median / base:>13.3f}{base / median:>16.2f}')
  if _COMPARE_INPUT.value:
    print(f'\n@float32: the batch before uint8 (host-normalised, {_BATCH.value} x '
          f'{float_batch["images"][0].nbytes} bytes an image key); normalising it on the host '
          f'took {1000 * host_seconds:.1f} ms (all image keys), work the old pipeline did ahead.')
    for name in variants:
      if name + '@float32' in rates:
        after, before = np.median(rates[name]), np.median(rates[name + '@float32'])
        print(f'{name:<28} step time uint8 / float32: {before / after:.3f} '
              f'({1000 * _BATCH.value / before:.1f} -> {1000 * _BATCH.value / after:.1f} ms)')


if __name__ == '__main__':
  app.run(main)
