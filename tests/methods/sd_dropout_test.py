"""The sd_dropout method inside the step context, against a NumPy computation."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import losses
from sdd_jax import models
from sdd_jax.methods import base
from sdd_jax.methods.sd_dropout import SDDropout

NUM_CLASSES = 5


def _softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _kl(p, q):
  return np.sum(p * (np.log(p) - np.log(q)), -1)


@functools.lru_cache()
def _setup():
  model = models.get_model('resnet18_cifar', num_classes=NUM_CLASSES, width=4,
                           stage_sizes=(1, 1, 1, 1))
  images = jax.random.normal(jax.random.key(1), (6, 16, 16, 3))
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0, impl='rbg'), images)  # rbg: XLA compiles its initialisers fast on CPU
  return model, variables, images


def _context(model, variables, images):
  features, _ = model.apply(variables, images, train=True, method=model.features,
                            mutable=['batch_stats'])
  stage_outputs, _ = model.apply(variables, images, train=True, method=model.stages,
                                 mutable=['batch_stats'])
  logits = model.apply(variables, features, method=model.head)
  return base.StepContext(model=model, variables=variables,
                          batch={'images': images, 'labels': jnp.zeros(6, jnp.int32)},
                          features=features, logits=logits, stage_outputs=tuple(stage_outputs))


def test_term_equals_numpy_symmetric_kl_of_two_masked_head_passes():
  model, variables, images = _setup()
  method = SDDropout(rate=0.5, temperature=3.0)
  ctx = _context(model, variables, images)
  key = jax.random.key(42)
  term, _ = method.loss(ctx, key)
  masks = np.asarray(losses.dropout_masks(key, ctx.features.shape, 0.5, 2))
  dense = variables['params']['classifier']['output']  # the default head: one Dense layer
  w, b = np.asarray(dense['kernel'], np.float64), np.asarray(dense['bias'], np.float64)
  f = np.asarray(ctx.features, np.float64)
  p_u = _softmax((masks[0] * f @ w + b) / 3.0)
  p_v = _softmax((masks[1] * f @ w + b) / 3.0)
  np.testing.assert_allclose(term, _kl(p_u, p_v) + _kl(p_v, p_u), rtol=2e-4, atol=1e-7)


def test_rate_zero_gives_zero_and_keys_matter():
  model, variables, images = _setup()
  ctx = _context(model, variables, images)
  zero, _ = SDDropout(rate=0.0).loss(ctx, jax.random.key(0))
  np.testing.assert_allclose(zero, 0.0, atol=1e-7)
  a, _ = SDDropout().loss(ctx, jax.random.key(0))
  b, _ = SDDropout().loss(ctx, jax.random.key(1))
  assert not np.allclose(a, b)


@pytest.mark.parametrize('position', [1, 2, 3])
def test_position_ablation_masks_a_stage_and_reaches_the_later_stages(position):
  model, variables, images = _setup()

  def term(params):
    ctx = _context(model, {'params': params, 'batch_stats': variables['batch_stats']}, images)
    return jnp.mean(SDDropout(position=position).loss(ctx, jax.random.key(0))[0])

  value, grads = jax.jit(jax.value_and_grad(term))(variables["params"])
  assert np.isfinite(value) and value > 0
  last_stage_grad = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads['layers_3']))
  assert last_stage_grad > 0  # the masked copies run through the remaining stages
  zero = SDDropout(position=position, rate=0.0).loss(_context(model, variables, images),
                                                     jax.random.key(0))[0]
  np.testing.assert_allclose(zero, 0.0, atol=1e-6)


@pytest.mark.parametrize('field,value,message', [
    ('rate', 1.0, r'rate: must be in \[0, 1\), got 1.0'),
    ('rate', -0.1, r'rate: must be in \[0, 1\)'),
    ('temperature', 0.0, r'temperature: must be > 0, got 0.0'),
    ('weight', -1.0, r'weight: must be >= 0'),
    ('direction', 'sideways', r"direction: must be one of \('both', 'forward', 'reverse'\)"),
    ('num_samples', 1, r'num_samples: must be an integer >= 2, got 1'),
    ('position', 5, r'position: must be 1, 2, 3 or 4'),
])
def test_validation_names_the_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    SDDropout(**{field: value}).validate()
