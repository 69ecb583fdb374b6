"""optim: the schedule turns epochs into steps once; SGD matches PyTorch's coupled weight decay;
cosine and AdamW (decoupled decay on kernels) match hand-worked NumPy."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sdd_jax.train import optim


def _optim_config(**overrides):
  config = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, nesterov=False,
                                          weight_decay=1e-4, lr_boundaries=(100, 150),
                                          lr_decay=0.1, warmup_epochs=0))
  config.update(overrides)
  return config


def test_paper_schedule_boundaries_are_epochs_times_steps_per_epoch():
  schedule = optim.make_lr_schedule(_optim_config(), steps_per_epoch=391)
  # lr is 0.1 up to step 100*391 - 1, 0.01 from 100*391, 0.001 from 150*391.
  np.testing.assert_allclose(
      [schedule(s) for s in (0, 39099, 39100, 58649, 58650, 78199)],
      [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_warmup_is_linear_from_zero():
  schedule = optim.make_lr_schedule(_optim_config(warmup_epochs=2, lr_boundaries=(5,)), 10)
  np.testing.assert_allclose([schedule(0), schedule(10), schedule(20), schedule(49),
                              schedule(50)], [0.0, 0.05, 0.1, 0.1, 0.01], rtol=1e-6)


def _torch_sgd(w, grads, lr, momentum, wd):
  """torch.optim.SGD(momentum, weight_decay) written out in NumPy."""
  buf = None
  for g in grads:
    d = g + wd * w
    buf = d if buf is None else momentum * buf + d
    w = w - lr * buf
  return w


@pytest.mark.parametrize('momentum,wd', [(0.9, 1e-4), (0.9, 0.0), (0.0, 5e-4)])
def test_sgd_matches_pytorch_coupled_weight_decay(momentum, wd):
  rng = np.random.default_rng(0)
  w0 = rng.normal(size=(3, 4))
  grads = [rng.normal(size=(3, 4)) for _ in range(4)]
  config = _optim_config(momentum=momentum, weight_decay=wd, lr=0.3)
  tx = optim.make_optimizer(config, optim.make_lr_schedule(config, 10))
  params = jnp.asarray(w0, jnp.float32)
  opt_state = tx.init(params)
  update = jax.jit(tx.update)
  for g in grads:
    updates, opt_state = update(jnp.asarray(g, jnp.float32), opt_state, params)
    params = params + updates
  np.testing.assert_allclose(params, _torch_sgd(w0, grads, 0.3, momentum, wd), rtol=1e-5,
                             atol=1e-6)


def test_cosine_schedule_with_warmup_by_hand():
  """lr 0.1 over 4 epochs of 10 steps: lr (1 + cos(pi t / 40)) / 2, times t / 10 in epoch 1."""
  config = _optim_config(schedule='cosine', warmup_epochs=1)
  schedule = optim.make_lr_schedule(config, steps_per_epoch=10, num_epochs=4)
  expected = [0.0, 0.5 * 0.05 * (1 + np.cos(np.pi / 8)), 0.05 * (1 + np.cos(np.pi / 4)),
              0.05, 0.05 * (1 + np.cos(3 * np.pi / 4)), 0.0]
  np.testing.assert_allclose([schedule(t) for t in (0, 5, 10, 20, 30, 40)], expected, atol=1e-7)
  with pytest.raises(ValueError, match="schedule 'cosine' needs num_epochs"):
    optim.make_lr_schedule(config, steps_per_epoch=10)


def test_adamw_decays_the_kernels_only_as_numpy():
  """Adam (b1 0.9, b2 0.999, eps 1e-8, bias-corrected) plus decoupled `lr * wd * w` on the
  kernels; biases, norm scales and embeddings get no decay."""
  rng = np.random.default_rng(0)
  w0 = {'dense': {'kernel': rng.normal(size=(3, 2)), 'bias': rng.normal(size=(2,))},
        'cls_token': rng.normal(size=(1, 1, 2))}
  grads = [jax.tree.map(lambda w: rng.normal(size=w.shape), w0) for _ in range(3)]
  lr, wd = 0.01, 0.5
  config = _optim_config(name='adamw', lr=lr, weight_decay=wd)
  tx = optim.make_optimizer(config, optim.make_lr_schedule(config, 10))
  params = jax.tree.map(lambda w: jnp.asarray(w, jnp.float32), w0)
  opt_state = tx.init(params)
  for g in grads:
    updates, opt_state = jax.jit(tx.update)(jax.tree.map(jnp.float32, g), opt_state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)

  def numpy_adamw(w, gs, decay):
    m = v = 0.0
    for t, g in enumerate(gs, start=1):
      m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
      step = (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
      w = w - lr * (step + (wd * w if decay else 0))
    return w

  for path, decay in ((('dense', 'kernel'), True), (('dense', 'bias'), False),
                      (('cls_token',), False)):
    get = functools.partial(functools.reduce, lambda t, k: t[k], path)
    np.testing.assert_allclose(get(params), numpy_adamw(get(w0), [get(g) for g in grads], decay),
                               rtol=1e-5, atol=1e-6, err_msg=str(path))
