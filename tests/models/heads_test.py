"""Head: Dense or [Dense-ReLU]*n-Dense, PyTorch nn.Linear init, float32 logits; pooling."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import models
from sdd_jax.models import heads


def _numpy_head(params, features, hidden):
  x = np.asarray(features, np.float64)
  for i in range(len(hidden)):
    layer = params[f'hidden_{i}']
    x = np.maximum(x @ np.asarray(layer['kernel'], np.float64) + layer['bias'], 0.0)
  return x @ np.asarray(params['output']['kernel'], np.float64) + params['output']['bias']


@pytest.mark.parametrize('hidden', [(), (512,), (64, 32)])
def test_head_matches_numpy(hidden):
  head = heads.Head(num_classes=10, hidden=hidden)
  features = jax.random.normal(jax.random.key(1), (3, 48))
  params = jax.jit(head.init)(jax.random.key(0, impl='rbg'), features)['params']
  widths = (48,) + hidden + (10,)
  names = [f'hidden_{i}' for i in range(len(hidden))] + ['output']
  assert sorted(params) == sorted(names)
  for name, fan_in, fan_out in zip(names, widths[:-1], widths[1:]):
    assert params[name]['kernel'].shape == (fan_in, fan_out)
    assert params[name]['bias'].shape == (fan_out,)
    # PyTorch nn.Linear: weight and bias uniform in +-1/sqrt(fan_in).
    bound = 1 / np.sqrt(fan_in)
    assert np.all(np.abs(params[name]['kernel']) <= bound)
    assert np.all(np.abs(params[name]['bias']) <= bound)
    assert np.abs(params[name]['kernel']).max() > 0.9 * bound
  logits = jax.jit(head.apply)({'params': params}, features)
  assert logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, _numpy_head(params, features, hidden), rtol=1e-5, atol=1e-5)


def test_model_head_hidden_is_the_two_layer_head_of_table_13():
  model = models.get_model('resnet18_cifar', num_classes=100, head_hidden=(512,))
  params = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0),
      jnp.zeros((1, 32, 32, 3)))['params']['classifier']
  assert params['hidden_0']['kernel'].shape == (512, 512)
  assert params['hidden_0']['bias'].shape == (512,)
  assert params['output']['kernel'].shape == (512, 100)
  assert params['output']['bias'].shape == (100,)


def test_bfloat16_head_returns_float32():
  head = heads.Head(num_classes=4, hidden=(8,), dtype=jnp.bfloat16)
  features = jnp.ones((2, 6))
  variables = jax.eval_shape(head.init, jax.random.key(0), features)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  logits = jax.eval_shape(head.apply, variables, features)
  assert logits.dtype == jnp.float32 and logits.shape == (2, 4)


def test_global_average_pool_is_float32_mean():
  # 32x32 positions of values near 1: a bf16 running sum stalls once it passes 256 (its 8-bit
  # mantissa cannot add ~1), and a bf16 result alone is off by up to 2**-9 relative; float32
  # accumulation matches the float64 mean of the same (bf16-exact) values to ~1e-7.
  x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, size=(2, 32, 32, 4)), jnp.bfloat16)
  pooled = heads.global_average_pool(x)
  assert pooled.dtype == jnp.float32 and pooled.shape == (2, 4)
  np.testing.assert_allclose(pooled, np.asarray(x, np.float64).mean(axis=(1, 2)), rtol=1e-6)
