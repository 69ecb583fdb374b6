"""On-device normalisation of uint8 batches against the NumPy formula `(x / 255 - mean) / std`,
and a train step on uint8 pixels against the same step on host-normalised float32 images."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sdd_jax import methods
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from sdd_jax.data import normalization
from tests.methods import tiny_net

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
DATA = ml_collections.ConfigDict(dict(mean=MEAN, std=STD))


def _formula(pixels):
  """The NumPy reference in float64."""
  return (np.asarray(pixels, np.float64) / 255 - np.array(MEAN)) / np.array(STD)


def _pixels(n, size=8, seed=0):
  """A hand-made batch: every uint8 value 0..255 in each channel, then random pixels."""
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, (n, size, size, 3), np.uint8)
  count = min(256, n * size * size)
  pixels.reshape(-1, 3)[:count] = np.arange(count, dtype=np.uint8)[:, None]
  return pixels


def test_every_image_key_is_normalised_on_device_like_the_formula():
  pixels = _pixels(8)
  batch = {'images': pixels, 'second_view': pixels[::-1].copy(), 'pair_images': pixels[:, ::-1],
           'labels': np.arange(8, dtype=np.int32), 'index': np.arange(8, dtype=np.int32)}
  out = jax.jit(normalization.make_normalize_fn(DATA))(batch)
  for key in normalization.IMAGE_KEYS:
    assert out[key].dtype == jnp.float32
    # float32 rounding of values up to |2.7|: a few units in the last place
    np.testing.assert_allclose(out[key], _formula(batch[key]), rtol=0, atol=1e-6, err_msg=key)
  for key in ('labels', 'index'):
    np.testing.assert_array_equal(out[key], batch[key])


def test_the_compute_dtype_is_the_rounded_float32_result():
  pixels = _pixels(2)
  out = jax.jit(normalization.make_normalize_fn(DATA, 'bfloat16'))({'images': pixels})
  assert out['images'].dtype == jnp.bfloat16
  np.testing.assert_array_equal(
      np.asarray(out['images'], np.float32),
      np.asarray(jnp.asarray(_formula(pixels).astype(np.float32), jnp.bfloat16), np.float32))


def test_float_images_pass_and_padding_rows_become_zero():
  floats = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype(np.float32)
  normalize_fn = jax.jit(normalization.make_normalize_fn(DATA))
  np.testing.assert_array_equal(normalize_fn({'images': floats})['images'], floats)
  mask = np.array([True, True, True, False])
  out = normalization.normalize_eval_batch({'images': _pixels(4), 'mask': mask}, DATA)
  np.testing.assert_allclose(out['images'][:3], _formula(_pixels(4)[:3]), rtol=0, atol=1e-6)
  assert not np.any(out['images'][3])  # masked padding: zeros, as the host used to make it


def test_a_step_without_normalize_fn_refuses_uint8_pixels():
  with pytest.raises(TypeError, match=r"\['images'\] hold uint8 pixels but the step has no "):
    normalization.check_normalized({'images': _pixels(1), 'labels': np.zeros(1, np.int32)})


def _train_two_steps(batches, normalize_fn, method_config):
  mesh = parallel.create_mesh(jax.devices()[:2])
  model = tiny_net.TinyNet(num_classes=10)
  optim_config = ml_collections.ConfigDict(dict(
      lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4, lr_boundaries=(), lr_decay=0.1,
      warmup_epochs=0))
  schedule = optim.make_lr_schedule(optim_config, steps_per_epoch=2)
  tx = optim.make_optimizer(optim_config, schedule)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx),
                  out_shardings=parallel.replicated_sharding(mesh))(
                      state_lib.init_key(0), jnp.zeros((1, 8, 8, 3)))
  train_step = step_lib.make_train_step(model, tx, methods.create_methods(method_config),
                                        seed=0, lr_schedule=schedule, mesh=mesh,
                                        normalize_fn=normalize_fn)
  losses = []
  for batch in batches:
    state, metrics = train_step(state, parallel.to_global(batch, mesh))
    losses.append(float(metrics['train/loss']))
  return losses, jax.device_get(state.params)


def test_a_step_on_uint8_pixels_equals_the_step_on_host_normalised_floats():
  """After: uint8 batch, normalised in the step. Before: the NumPy formula on the host. The
  SD-Dropout loss holds the CE loss and the method's term, both on the normalised images."""
  method_config = {'sd_dropout': {}}
  labels = np.random.default_rng(2).integers(0, 10, 16).astype(np.int32)
  pixels = [_pixels(16, seed=s) for s in (3, 4)]
  after = _train_two_steps([{'images': p, 'labels': labels} for p in pixels],
                           normalization.make_normalize_fn(DATA), method_config)
  before = _train_two_steps(
      [{'images': _formula(p).astype(np.float32), 'labels': labels} for p in pixels], None,
      method_config)
  np.testing.assert_allclose(after[0], before[0], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               after[1], before[1])
