"""The train step: one compilation, the same result on 1 and on 8 devices, exact SGD update."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sdd_jax import losses
from sdd_jax import methods
from sdd_jax import models
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from tests.methods import bn_free_net

OPTIM = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                                       lr_boundaries=(2,), lr_decay=0.1, warmup_epochs=0))


def _model():
  return models.get_model('resnet18_cifar', num_classes=10, width=4, stage_sizes=(1, 1, 1, 1))


def _batches(n, batch=16):
  rng = np.random.default_rng(0)
  return [{'images': rng.normal(size=(batch, 16, 16, 3)).astype(np.float32),
           'labels': rng.integers(0, 10, size=batch).astype(np.int32)} for _ in range(n)]


def _run(devices, batches, method_config, optim_config=OPTIM, model=None):
  mesh = parallel.create_mesh(devices)
  model = model or _model()
  schedule = optim.make_lr_schedule(optim_config, steps_per_epoch=2)
  tx = optim.make_optimizer(optim_config, schedule)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx),
                  out_shardings=parallel.replicated_sharding(mesh))(
                      state_lib.init_key(0), jnp.zeros((1, 16, 16, 3)))
  train_step = step_lib.make_train_step(model, tx, methods.create_methods(method_config),
                                        seed=0, lr_schedule=schedule, mesh=mesh)
  history = []
  for batch in batches:
    state, metrics = train_step(state, parallel.to_global(batch, mesh))
    history.append(jax.device_get(metrics))
  return state, history, train_step


@pytest.mark.parametrize('method_config', [{}, {'sd_dropout': {}}])
def test_eight_devices_equal_one_device(method_config):
  assert jax.device_count() == 8, 'tests/conftest.py sets 8 simulated CPU devices'
  batches = _batches(3)
  one, h1, _ = _run(jax.devices()[:1], batches, method_config)
  eight, h8, _ = _run(jax.devices(), batches, method_config)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               one.batch_stats, eight.batch_stats)
  np.testing.assert_allclose([m['train/loss'] for m in h1], [m['train/loss'] for m in h8],
                             rtol=1e-5)
  assert int(eight.step) == 3


def test_compiles_once_over_many_steps_and_follows_the_schedule():
  _, history, train_step = _run(jax.devices(), _batches(6), {'sd_dropout': {}})
  assert train_step._cache_size() == 1  # pylint: disable=protected-access
  # lr_boundaries=(2,) epochs at 2 steps per epoch: x0.1 from step 4 on.
  np.testing.assert_allclose([m['train/lr'] for m in history],
                             [0.1, 0.1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
  assert all(m['train/loss_sd_dropout'] > 0 for m in history)


def test_first_step_is_plain_sgd_on_cross_entropy_plus_weighted_term():
  """Momentum 0, no weight decay: params1 = params0 - lr * grad(CE + w T^2 L_SDD), with the
  SD-Dropout masks drawn from the step key of step 0 — computed here without step.py."""
  optim_config = ml_collections.ConfigDict(dict(OPTIM, momentum=0.0, weight_decay=0.0))
  batch = _batches(1)[0]
  state, history, _ = _run(jax.devices()[:1], [batch],
                           {'sd_dropout': {'weight': 0.5, 'temperature': 2.0}}, optim_config)
  model = _model()
  variables = jax.jit(functools.partial(model.init, train=False))(
      state_lib.init_key(0), jnp.zeros((1, 16, 16, 3)))
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 0),
                           __import__('zlib').crc32(b'sd_dropout') & 0x7FFFFFFF)

  def reference_loss(params):
    v = {'params': params, 'batch_stats': variables['batch_stats']}
    f, _ = model.apply(v, batch['images'], train=True, method=model.features,
                       mutable=['batch_stats'])
    head = lambda x: model.apply(v, x, method=model.head)
    ce = losses.cross_entropy(head(f), batch['labels']).mean()
    return ce + 0.5 * 4.0 * losses.sd_dropout(head, f, key, rate=0.5, temperature=2.0).mean()

  loss, grads = jax.jit(jax.value_and_grad(reference_loss))(variables["params"])
  expected = jax.tree.map(lambda p, g: p - 0.1 * g, variables['params'], grads)
  np.testing.assert_allclose(history[0]['train/loss'], loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               state.params, expected)


def test_the_model_draws_its_dropout_from_the_step_key_on_any_device_count():
  """A model with dropout inside and no BatchNorm: the step applies it with
  `rngs={'dropout': fold_in(fold_in(key(seed), step), crc32('dropout'))}` — the loss of each
  step is recomputed here on one device without step.py — on 8 devices."""
  model = bn_free_net.BNFreeNet(num_classes=10, dropout_rate=0.5)
  optim_config = ml_collections.ConfigDict(dict(OPTIM, momentum=0.0, weight_decay=0.0))
  batches = _batches(2)
  eight, history, _ = _run(jax.devices(), batches, {}, optim_config, model)
  params = jax.jit(functools.partial(model.init, train=False))(
      state_lib.init_key(0), jnp.zeros((1, 16, 16, 3)))['params']

  @jax.jit
  def reference(params, images, labels, step):
    step_key = jax.random.fold_in(jax.random.key(0), step)
    dropout = jax.random.fold_in(step_key, __import__('zlib').crc32(b'dropout') & 0x7FFFFFFF)
    def loss(p):
      logits = model.apply({'params': p}, images, train=True, rngs={'dropout': dropout})
      return losses.cross_entropy(logits, labels).mean()
    value, grads = jax.value_and_grad(loss)(params)
    return value, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

  for step, batch in enumerate(batches):
    loss, params = reference(params, batch['images'], batch['labels'], step)
    np.testing.assert_allclose(history[step]['train/loss'], loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               eight.params, params)
