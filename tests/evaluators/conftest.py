"""Fake models and eval contexts for the evaluator tests (scenic-style: fixed logits by hand).

- `fixed_logits`: the logits of an image are looked up from a table by the example's code,
  written into pixel (0, 0) of the uint8 image (channel 0: code, the rest free); its input
  gradient is zero. Used where only predictions matter (calibration, corruption).
- `linear`: logits = mean over pixels of the normalised image @ W.T + b; its input gradient is
  what `predict.make_input_grad_fn` computes, so FGSM and ODIN steps can be checked in NumPy.
"""
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs.common import data_config
from sdd_jax import losses
from sdd_jax import parallel
from sdd_jax.data import sources
from sdd_jax.evaluators import base

MEAN = (0.5071, 0.4865, 0.4409)
STD = (0.2673, 0.2564, 0.2762)


def make_data_config(**overrides) -> ml_collections.ConfigDict:
  """32x32 RGB, no augmentation, the F1 normalisation constants."""
  return data_config('cifar100', **{'source': 'synthetic', 'augment': 'none', 'mean': MEAN,
                                    'std': STD, 'num_classes': 10, 'prefetch': 0, **overrides})


def make_ctx(workdir, source, config=None, batch_size=16, devices=None) -> base.EvalContext:
  mesh = parallel.create_mesh(devices if devices is not None else jax.devices())
  return base.EvalContext(data_config=config or make_data_config(), batch_size=batch_size,
                          mesh=mesh, source=source, workdir=str(workdir))


def pixels(images, config=None):
  """Normalised float images -> the uint8 values they came from (rounded)."""
  config = config or make_data_config()
  return jnp.round((images * jnp.asarray(config.std) + jnp.asarray(config.mean)) * 255)


def fixed_logits(table, config=None) -> base.Predictors:
  """Predictors whose logits for an image with code c (pixel (0, 0, 0)) are `table[c]`."""
  table = jnp.asarray(table, jnp.float32)

  @jax.jit
  def logits_fn(images):
    codes = pixels(images, config)[:, 0, 0, 0].astype(jnp.int32)
    return table[codes]

  return base.Predictors(logits_fn=logits_fn,
                         input_grad_fn=jax.jit(lambda images, labels, t: jnp.zeros_like(images)))


def linear(w, b) -> base.Predictors:
  """logits = mean_{h,w}(images) @ w.T + b, with the summed-CE input gradient (as evaluators/predict.py)."""
  w, b = jnp.asarray(w), jnp.asarray(b)

  def logits_fn(images):
    return jnp.mean(images, axis=(1, 2)) @ w.T + b

  def input_grad_fn(images, labels, temperature):
    total = lambda x: jnp.sum(losses.cross_entropy(logits_fn(x) / temperature, labels))
    return jax.grad(total)(images)

  return base.Predictors(logits_fn=jax.jit(logits_fn), input_grad_fn=jax.jit(input_grad_fn))


def coded_images(codes, rng=None, extra=None) -> np.ndarray:
  """uint8 [n, 32, 32, 3]: random pixels, code c at pixel (0, 0, 0) (and `extra` at (0, 0, 1))."""
  rng = rng or np.random.default_rng(0)
  images = rng.integers(0, 256, (len(codes), 32, 32, 3), dtype=np.uint8)
  images[:, 0, 0, 0] = codes
  if extra is not None:
    images[:, 0, 0, 1] = extra
  return images


def array_source(images, labels, num_classes=10):
  return sources.ArraySource(np.asarray(images, np.uint8), np.asarray(labels), num_classes,
                             'test source')


@pytest.fixture
def fake():
  """The helpers above, for tests (pytest's importlib mode has no shared test modules)."""
  return types.SimpleNamespace(
      MEAN=MEAN, STD=STD, data_config=make_data_config, ctx=make_ctx, pixels=pixels,
      fixed_logits=fixed_logits, linear=linear, coded_images=coded_images,
      array_source=array_source)
