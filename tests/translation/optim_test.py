"""fairseq's inverse-sqrt schedule and AdamW-style weight decay against hand-worked numbers."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sdd_jax.translation import optim


def _optim(**overrides):
  config = ml_collections.ConfigDict(dict(lr=5e-4, b1=0.9, b2=0.98, eps=1e-8, weight_decay=1e-4,
                                          warmup_steps=4000, clip_norm=0.0))
  config.update(overrides)
  return config


def test_inverse_sqrt_schedule_with_linear_warmup_as_fairseq():
  schedule = optim.make_lr_schedule(_optim())
  for step, expected in [(0, 0.0), (1, 5e-4 / 4000), (2000, 2.5e-4), (4000, 5e-4),
                         (16000, 2.5e-4), (36000, 5e-4 / 3)]:
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-6, atol=1e-12)
  np.testing.assert_allclose(float(schedule(10000)), 5e-4 * math.sqrt(4000 / 10000), rtol=1e-6)


def test_weight_decay_is_decoupled_on_every_parameter():
  """Zero gradients: Adam's step is 0 and only `w <- w - lr * wd * w` remains (fairseq's adam is
  AdamW-like); an L2 term added to the gradient would instead move w by about lr (Adam
  normalises it)."""
  tx = optim.make_optimizer(_optim(weight_decay=0.1), lambda step: 0.5)
  params = {'kernel': jnp.array([2.0, -4.0]), 'bias': jnp.array([1.0])}
  updates, _ = tx.update({k: jnp.zeros_like(v) for k, v in params.items()}, tx.init(params),
                         params)
  for name in params:
    np.testing.assert_allclose(updates[name], -0.5 * 0.1 * params[name], rtol=1e-6)


def test_clip_norm_zero_is_no_clipping_and_positive_clips_the_global_norm():
  params = {'w': jnp.zeros(2)}
  grads = {'w': jnp.array([30.0, 40.0])}  # norm 50
  for clip, first_moment in [(0.0, [3.0, 4.0]), (5.0, [0.3, 0.4])]:
    tx = optim.make_optimizer(_optim(clip_norm=clip, weight_decay=0.0), lambda step: 1.0)
    _, state = tx.update(grads, tx.init(params), params)
    mu = [s for s in jax.tree.leaves(state) if getattr(s, 'shape', ()) == (2,)][0]
    np.testing.assert_allclose(mu, first_moment, rtol=1e-6)  # (1 - b1) * clipped gradient
