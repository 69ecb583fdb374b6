"""Shared fixtures for the model tests."""
import functools

import jax
import numpy as np
import pytest


def _fill(path, leaf, rng):
  """A value for one variable: He-scaled kernels, positive scales/variances, small rest."""
  name = path[-1].key
  shape = leaf.shape
  if name == 'kernel':
    fan_in = int(np.prod(shape[:-1]))
    value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
  elif name in ('scale', 'var'):
    value = rng.uniform(0.5, 1.5, shape)
  else:  # bias, mean
    value = rng.normal(0.0, 0.1, shape)
  return np.asarray(value, leaf.dtype)


@pytest.fixture(name='random_variables')
def fixture_random_variables():
  """`random_variables(model, images, seed=0)` -> variables of `model` filled by NumPy.

  Uses `jax.eval_shape(model.init)` for the structure only: compiling the model's own
  random initialisers costs ~15 s per model on CPU (threefry), and the contract tests
  do not depend on them (initialisers have their own tests). Running statistics are
  not 0/1, so eval mode really uses them.
  """
  def create(model, images, seed=0):
    shapes = jax.eval_shape(
        functools.partial(model.init, train=False), jax.random.key(0), images)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map_with_path(lambda p, s: _fill(p, s, rng), shapes)
  return create


def numpy_conv(images: np.ndarray, kernel: np.ndarray, strides: int, pad: int) -> np.ndarray:
  """Reference 2-D convolution (PyTorch semantics: symmetric zero padding), float64.

  Args:
    images: `[batch, H, W, C_in]`.
    kernel: `[k, k, C_in, C_out]`.
  Returns:
    `[batch, (H + 2 pad - k) // strides + 1, ..., C_out]`.
  """
  images = np.pad(np.asarray(images, np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  kernel = np.asarray(kernel, np.float64)
  k = kernel.shape[0]
  out_h = (images.shape[1] - k) // strides + 1
  out_w = (images.shape[2] - k) // strides + 1
  out = np.zeros((images.shape[0], out_h, out_w, kernel.shape[-1]))
  for dy in range(k):
    for dx in range(k):
      window = images[:, dy:dy + strides * out_h:strides, dx:dx + strides * out_w:strides]
      out += window @ kernel[dy, dx]
  return out


@pytest.fixture(name='numpy_conv')
def fixture_numpy_conv():
  return numpy_conv
