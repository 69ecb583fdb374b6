"""Every registered method, alone and with `sd_dropout`, runs two steps of the one jitted train
step on a tiny model over 8 simulated devices, through the hooks only (methods/base.py)."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common
from sdd_jax import data as data_lib
from sdd_jax import methods
from sdd_jax import optim
from sdd_jax import parallel
from sdd_jax import state as state_lib
from sdd_jax import step as step_lib
from sdd_jax import trainer
from sdd_jax.methods import base
from tests.methods import tiny_net

OPTIM = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                                       lr_boundaries=(1,), lr_decay=0.1, warmup_epochs=0))
NUM_CLASSES, BATCH, SIZE = 5, 16, 16
RUN = methods.RunInfo(num_examples=40, num_classes=NUM_CLASSES, steps_per_epoch=1,
                      num_epochs=2, num_devices=8)
CASES = [[name] for name in methods.METHODS.names()] + [
    [name, 'sd_dropout'] for name in methods.METHODS.names() if name != 'sd_dropout']


def _model():
  return tiny_net.TinyNet(num_classes=NUM_CLASSES)


def _batches():
  """Two global batches with every key a method may need; indices distinct within an epoch."""
  rng = np.random.default_rng(0)
  order = rng.permutation(RUN.num_examples)
  out = []
  for step in range(2):
    images = rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32)
    out.append({'images': images,
                'labels': rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32),
                'index': order[step * BATCH:(step + 1) * BATCH].astype(np.int32),
                'second_view': images[:, :, ::-1].copy(),
                'pair_images': rng.normal(size=images.shape).astype(np.float32),
                'pair_index': rng.integers(0, RUN.num_examples, BATCH).astype(np.int32)})
  return out


def _eval_config():
  config = common.recipe()
  config.data = common.data_config('synthetic', source='synthetic', num_examples=24,
                                   num_classes=NUM_CLASSES, synthetic_shape=(SIZE, SIZE, 3),
                                   image_size=SIZE, crop_padding=2)
  config.eval_batch_size = 24
  return config


@pytest.mark.parametrize('names', CASES, ids='+'.join)
def test_two_steps_on_eight_devices(names, tmp_path):
  assert jax.device_count() == 8
  mesh = parallel.create_mesh()
  model = _model()
  configured = methods.create_methods({name: {} for name in names})
  schedule = optim.make_lr_schedule(OPTIM, RUN.steps_per_epoch)
  tx = optim.make_optimizer(OPTIM, schedule)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx,
                                    methods=configured, run=RUN),
                  out_shardings=state_lib.shardings(mesh, configured))(
                      state_lib.init_key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  structure = jax.tree.structure(state)
  params0 = jax.device_get(state.params)
  train_step = step_lib.make_train_step(model, tx, configured, seed=0, lr_schedule=schedule,
                                        mesh=mesh, run=RUN)
  for batch in _batches():
    state, metrics = train_step(state, parallel.to_global(batch, mesh))
  metrics = jax.device_get(metrics)
  assert train_step._cache_size() == 1  # pylint: disable=protected-access
  assert jax.tree.structure(state) == structure and int(state.step) == 2
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  expected = metrics['train/loss_ce'] + sum(
      m.weight * m.temperature ** 2 * metrics[f'train/loss_{m.name}']
      for m in configured if f'train/loss_{m.name}' in metrics)
  np.testing.assert_allclose(metrics['train/loss'], expected, rtol=1e-5)
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params,
                       params0)
  assert all(v > 0 for v in jax.tree.leaves(moved))  # every parameter is trained
  for name, spec in methods.state_partitions(configured).items():  # declared layout kept
    for leaf, leaf_spec in zip(jax.tree.leaves(state.method_states[name]),
                               jax.tree.leaves(spec, is_leaf=lambda x: isinstance(
                                   x, jax.sharding.PartitionSpec))):
      assert leaf.sharding.spec == leaf_spec

  # The inference path is the plain network, whatever the method added to the state.
  plain = jax.eval_shape(functools.partial(model.init, train=False), state_lib.init_key(0),
                         jnp.zeros((1, SIZE, SIZE, 3)))
  inference = methods.inference_variables(configured, state.variables)
  assert jax.tree.structure(inference) == jax.tree.structure(plain)
  if len(names) == 1 and any(base.overrides(m, hook) for m in configured
         for hook in ('inference_variables', 'eval_logits')):
    config = _eval_config()
    source = data_lib.create_source(config.data, 'test')
    results = trainer.make_evaluate(config, model, mesh, source, str(tmp_path),
                                    configured)(state)
    assert results['test/count'] == 24
    for prefix in methods.eval_logits(configured):
      assert 0 <= results[f'{prefix}/top1'] <= 100 and results[f'{prefix}/count'] == 24


def test_joint_forward_is_one_batchnorm_batch_of_both_inputs():
  """CS-KD / DDGSD: anchors and partners in ONE training-mode batch, interleaved by example:
  equal to the first / second half of the network on the concatenation."""
  model = _model()
  variables = jax.jit(functools.partial(model.init, train=False))(
      state_lib.init_key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  batch = _batches()[0]

  @jax.jit
  def run(a, b):
    (first, second), stats = base.joint_forward(model, variables, [a, b])
    logits, updates = model.apply(variables, jnp.concatenate([a, b]), train=True,
                                  mutable=['batch_stats'])
    return first[1], second[1], logits, stats, updates['batch_stats']

  first, second, logits, stats, reference = run(batch['images'], batch['pair_images'])
  np.testing.assert_allclose(first, logits[:BATCH], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(second, logits[BATCH:], rtol=1e-4, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), stats,
               reference)
