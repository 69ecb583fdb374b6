"""optim: the schedule turns epochs into steps once; SGD matches PyTorch's coupled weight decay."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sdd_jax import optim


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
