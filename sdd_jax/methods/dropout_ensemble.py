"""SD-Dropout's test-time dropout ensemble: the predictor `dropout_ensemble`.

SD-Dropout trains the head under inverted dropout on the pooled features. Its predictor averages
the softmax of K such masks on the features of one evaluation-mode forward:

    logits = log( (1/K) * sum_k softmax(head(m_k * f)) )          [batch, classes]

with `f = model.features(images, train=False)` [batch, D] and `m_k` [D] an inverted-dropout
mask, `Bernoulli(1 - rate) / (1 - rate)` per entry (the masking of training,
`losses.dropout_masks`). Averaging the predictions of dropout masks at test time is MC dropout
(Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation", §3), here on the head only.
Returned as the log of the averaged probabilities, so `softmax(logits)` is the averaged
prediction and every evaluator reads it as a network's logits (FGSM's input gradient flows
through it; ODIN divides it by its temperature).

Cost: one backbone pass and K head passes (`jax.vmap` over the masks), never K backbone passes.

Masks: fixed and shared by every example. Mask k is drawn from `mask_key(k)` =
`fold_in(stream_key(key(0), 'sd_dropout/dropout_ensemble'), k)`, independent of the run's seed,
the step and the data. The masks an example sees therefore do not depend on its batch, its row,
the padding or the device count, two evaluations of one checkpoint give the same numbers, and
the first K masks of a larger K are the same masks. The ensemble so has K fixed members (K
thinned heads); training draws fresh masks per example and step. Either way, each example's K
masks are K independent draws of the same inverted-dropout distribution.
"""
from typing import Callable

import jax
import jax.numpy as jnp

from sdd_jax.train import keys

KEY_NAME = 'sd_dropout/dropout_ensemble'


def mask_key(k: int) -> jax.Array:
  """The key of mask `k` (0-based): the fixed evaluation key with `k` folded in."""
  return jax.random.fold_in(keys.stream_key(jax.random.key(0), KEY_NAME), k)


def create_masks(count: int, width: int, rate: float) -> jax.Array:
  """`count` inverted-dropout masks `[count, width]` float32: row k is
  `bernoulli(mask_key(k), 1 - rate, (width,)) / (1 - rate)`; rate 0: ones."""
  if rate == 0:
    return jnp.ones((count, width), jnp.float32)
  keep = 1.0 - rate
  return jnp.stack([jax.random.bernoulli(mask_key(k), keep, (width,)).astype(jnp.float32) / keep
                    for k in range(count)])


def ensemble_logits(model, variables, images: jax.Array, *, rate: float,
                    count: int) -> jax.Array:
  """The log of the averaged softmax of `count` masked head passes (module docstring),
  `[batch, classes]` float32. `variables`: the plain network's; `images` `[batch, H, W, C]`."""
  features = model.apply(variables, images, train=False, method=model.features)
  masks = create_masks(count, features.shape[-1], rate).astype(features.dtype)

  def head(mask):
    return model.apply(variables, features * mask, method=model.head)

  log_probs = jax.nn.log_softmax(jax.vmap(head)(masks).astype(jnp.float32), axis=-1)
  return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(jnp.float32(count))


def make_apply_fn(rate: float, count: int) -> Callable:
  """`fn(model, variables, images) -> logits`: `ensemble_logits` at `rate` with `count` masks
  (a method's `eval_logits` entry)."""
  def apply_fn(model, variables, images):
    return ensemble_logits(model, variables, images, rate=rate, count=count)
  return apply_fn
