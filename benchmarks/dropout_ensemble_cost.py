r"""Milliseconds per eval batch of the plain network and of SD-Dropout's `dropout_ensemble`
predictor at K = 1, 8 and 32 masks, interleaved in one process so that machine noise hits every
variant alike; prints a markdown table.

  python benchmarks/dropout_ensemble_cost.py                       # ResNet-18 (CIFAR), width 16
  python benchmarks/dropout_ensemble_cost.py --width 64 --rounds 9 --masks 1,8,32

Each variant is the jitted logits function the evaluators call (`evaluators/predict.py`'s
`make_logits_fn`, over this process's data mesh) with the predictor the runner builds from the
method (`methods.eval_logits`). Every variant is compiled first; then each round times `--steps`
batches of every variant in turn (blocking on the result). Reported: the median ms per batch
over all timed batches, and its ratio to the plain network's. The predictor is one backbone pass
plus K head passes, so its cost over the plain network should grow with K by the head's cost
(a `[batch, D] x [D, classes]` matmul and a softmax per mask) only.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax import methods as methods_lib
from sdd_jax import models
from sdd_jax import parallel
from sdd_jax.evaluators import predict

_MODEL = flags.DEFINE_string('model', 'resnet18_cifar', 'Registered model name.')
_WIDTH = flags.DEFINE_integer('width', 16, 'The model\'s width (64: the paper\'s ResNet-18).')
_BATCH = flags.DEFINE_integer('batch', 256, 'Eval batch size.')
_CLASSES = flags.DEFINE_integer('classes', 100, 'Number of classes.')
_MASKS = flags.DEFINE_list('masks', ['1', '8', '32'], 'The K of each ensemble variant.')
_ROUNDS = flags.DEFINE_integer('rounds', 7, 'Timed rounds.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Batches per variant per round.')


def main(argv):
  del argv
  model = models.get_model(_MODEL.value, num_classes=_CLASSES.value, width=_WIDTH.value)
  mesh = parallel.create_mesh()
  images = jax.device_put(
      jnp.asarray(np.random.default_rng(0).normal(size=(_BATCH.value, 32, 32, 3)), jnp.float32),
      parallel.data_sharding(mesh))
  variables = jax.jit(model.init, static_argnums=2)(jax.random.key(0), images[:1], False)
  variants = {'plain network': predict.make_logits_fn(model, mesh)}
  for k in map(int, _MASKS.value):
    configured = methods_lib.create_methods({'sd_dropout': {'eval_masks': k}})
    apply_fn = methods_lib.eval_logits(configured)['sd_dropout/dropout_ensemble']
    variants[f'dropout_ensemble, K = {k}'] = predict.make_logits_fn(model, mesh, apply_fn)
  for fn in variants.values():  # compile (and warm) every variant before timing any
    fn(variables, images).block_until_ready()
  times = {name: [] for name in variants}
  for _ in range(_ROUNDS.value):
    for name, fn in variants.items():
      for _ in range(_STEPS.value):
        start = time.perf_counter()
        fn(variables, images).block_until_ready()
        times[name].append(1000 * (time.perf_counter() - start))
  plain = float(np.median(times['plain network']))
  print(f'{_MODEL.value} width {_WIDTH.value}, eval batch {_BATCH.value}, {_CLASSES.value} '
        f'classes, {jax.device_count()} {jax.devices()[0].platform} device(s); median of '
        f'{_ROUNDS.value} x {_STEPS.value} batches, variants interleaved\n')
  print('| predictor | ms / batch (median) | x plain |')
  print('| --- | ---: | ---: |')
  for name, values in times.items():
    median = float(np.median(values))
    print(f'| {name} | {median:.1f} | {median / plain:.2f} |')


if __name__ == '__main__':
  app.run(main)
