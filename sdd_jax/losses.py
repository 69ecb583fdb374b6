"""Per-example loss primitives: cross-entropy, KL at a temperature, SD-Dropout.

Every loss returns one value per example, ``[batch]``; callers reduce (mean over the batch is
the paper's "batchmean") and apply ``weight * temperature**2`` (paper Eq. 5). Logits are upcast
to at least float32 inside (bfloat16 -> float32; float64 stays float64 for gradient checks).
Hyper-parameters (``rate``, ``temperature``, ``direction``, ``num_samples``, ``position``) are
static Python values: they are checked at trace time, so mark them static under ``jax.jit``.
"""
import itertools
from typing import Callable

import jax
import jax.numpy as jnp

DIRECTIONS = ('both', 'forward', 'reverse')


def _upcast(x: jax.Array) -> jax.Array:
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_temperature(temperature) -> None:
  if not temperature > 0:
    raise ValueError(f'temperature must be > 0, got {temperature}')


def _check_rate(rate) -> None:
  if not 0 <= rate < 1:
    raise ValueError(f'rate must be in [0, 1), got {rate}')


def _check_direction(direction) -> None:
  if direction not in DIRECTIONS:
    raise ValueError(f'direction must be one of {", ".join(map(repr, DIRECTIONS))}, '
                     f'got {direction!r}')


def _check_num_samples(num_samples) -> None:
  if not (isinstance(num_samples, int) and num_samples >= 2):
    raise ValueError(f'num_samples must be an int >= 2, got {num_samples!r}')


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Cross-entropy: logits `[batch, classes]` -> `[batch]`, against either

  - integer labels `[batch]` (class indices; optax's
    `softmax_cross_entropy_with_integer_labels`), or
  - float targets `[batch, classes]` (one-hot rows or any distributions; optax's
    `softmax_cross_entropy`): `soft_cross_entropy`, `-Σ_c targets_c log softmax(logits)_c`.

  Anything else (float labels `[batch]`, integer `[batch, classes]`, other shapes) raises
  ValueError naming both accepted forms. The dtype and shapes are static, checked at trace time.
  """
  labels = jnp.asarray(labels)
  if jnp.issubdtype(labels.dtype, jnp.floating) and labels.shape == jnp.shape(logits):
    return soft_cross_entropy(logits, labels)
  if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.shape != jnp.shape(logits)[:-1]:
    raise ValueError(f'cross_entropy: labels must be integer class indices of shape '
                     f'{tuple(jnp.shape(logits)[:-1])} or float targets of shape '
                     f'{tuple(jnp.shape(logits))}, got {labels.dtype} {tuple(labels.shape)}')
  log_probs = jax.nn.log_softmax(_upcast(logits), axis=-1)
  return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]


def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """`-Σ_c targets_c log softmax(logits)_c`: logits, targets (distributions) `[batch, classes]`.

  Returns `[batch]`.
  """
  log_probs = jax.nn.log_softmax(_upcast(logits), axis=-1)
  return -jnp.sum(_upcast(targets) * log_probs, axis=-1)


def kl_divergence(target_logits: jax.Array, logits: jax.Array,
                  temperature: float = 1.0) -> jax.Array:
  """`KL(p_target ‖ p) = Σ_c p_target,c (log p_target,c − log p_c)`, `p = softmax(· / T)`.

  Computed from log-softmax, so it is stable for large logits and `0 · log 0 = 0`. Gradients
  flow through both arguments; apply `jax.lax.stop_gradient` to a detached target yourself.

  Args:
    target_logits: `[batch, classes]`, the distribution the KL is taken from.
    logits: `[batch, classes]`.
    temperature: `T > 0`.
  Returns:
    `[batch]`, not multiplied by `T²`.
  """
  _check_temperature(temperature)
  log_p_target = jax.nn.log_softmax(_upcast(target_logits) / temperature, axis=-1)
  log_p = jax.nn.log_softmax(_upcast(logits) / temperature, axis=-1)
  return jnp.sum(jnp.exp(log_p_target) * (log_p_target - log_p), axis=-1)


def symmetric_kl(logits_u: jax.Array, logits_v: jax.Array, temperature: float,
                 direction: str = 'both') -> jax.Array:
  """Symmetric KL between two predictions at temperature T (SD-Dropout, Lee et al. 2022).

  - `'both'` (the paper's default): `KL(p_u‖p_v) + KL(p_v‖p_u)`, gradients through everything.
  - `'forward'` (Eq. 6): `KL(sg p_u‖p_v) + KL(sg p_v‖p_u)`, each KL's first argument detached.
  - `'reverse'` (Eq. 7): `KL(p_u‖sg p_v) + KL(p_v‖sg p_u)`, each KL's second argument detached.

  The three give the same value and differ only in their gradients.

  Args:
    logits_u, logits_v: `[batch, classes]`.
  Returns:
    `[batch]`, not multiplied by `T²`.
  """
  _check_direction(direction)
  if jnp.shape(logits_u) != jnp.shape(logits_v):
    raise ValueError(f'logits_u and logits_v must have the same shape, got '
                     f'{jnp.shape(logits_u)} and {jnp.shape(logits_v)}')
  sg = jax.lax.stop_gradient
  first = sg if direction == 'forward' else (lambda x: x)
  second = sg if direction == 'reverse' else (lambda x: x)
  return (kl_divergence(first(logits_u), second(logits_v), temperature)
          + kl_divergence(first(logits_v), second(logits_u), temperature))


def dropout_masks(key: jax.Array, shape, rate: float, num_samples: int = 2) -> jax.Array:
  """`num_samples` inverted-dropout masks, `[num_samples, *shape]` float32.

  Each entry is `Bernoulli(1 − rate) / (1 − rate)`, as PyTorch's `F.dropout`; mask `i` is drawn
  from `jax.random.split(key, num_samples)[i]`. `rate=0` gives all ones.
  """
  _check_rate(rate)
  _check_num_samples(num_samples)
  shape = tuple(shape)
  if rate == 0:
    return jnp.ones((num_samples, *shape), jnp.float32)
  keep = 1.0 - rate
  keys = jax.random.split(key, num_samples)
  return jnp.stack([jax.random.bernoulli(k, keep, shape).astype(jnp.float32) / keep
                    for k in keys])


def sd_dropout(head_fn: Callable[[jax.Array], jax.Array], features: jax.Array, key: jax.Array,
               *, rate: float, temperature: float, direction: str = 'both',
               num_samples: int = 2) -> jax.Array:
  """SD-Dropout's self-distillation term `L_SDD` (Lee et al. 2022, Eqs. 2-3, 6-7), per example.

  Eq. 2: `z_i = head_fn(m_i ⊙ features)`, masks `m_i = dropout_masks(key, features.shape, rate, K)`
  (element-wise, so `features` may be pooled `[batch, dim]` or a feature map
  `[batch, H, W, C]` for the position ablation, Table 12). For K = 2 (the paper) the term is
  `symmetric_kl(z_0, z_1, temperature, direction)`; for K > 2 it is the mean of that over the
  K(K−1)/2 unordered pairs `i < j`. The head runs once per masked copy (not on a concatenated
  batch), so a head with train-mode BatchNorm sees each copy's own batch statistics.
  Choices: `rate` is the drop probability (the paper writes `u ~ Bernoulli(β)` with β "the
  dropout rate"; we follow PyTorch's `F.dropout`: keep with `1 − rate`, scale by
  `1 / (1 − rate)`). Paper defaults, set by the caller: β = 0.5, T = 3, direction 'both' (Eq. 3;
  'forward'/'reverse' are Eqs. 6/7). The caller adds `weight · T²` times the batch mean
  (Eqs. 4-5); not multiplied by `T²` here.

  Args:
    head_fn: maps masked features to logits `[batch, classes]`.
    features: `[batch, ...]`.
    key: PRNG key for the masks.
  Returns:
    `[batch]`.
  """
  _check_rate(rate)
  _check_temperature(temperature)
  _check_num_samples(num_samples)
  _check_direction(direction)
  masks = dropout_masks(key, features.shape, rate, num_samples).astype(features.dtype)
  logits = []
  for mask in masks:
    z = head_fn(mask * features)
    if z.ndim != 2 or z.shape[0] != features.shape[0]:
      raise ValueError(f'head_fn must return logits [batch, classes] with batch '
                       f'{features.shape[0]} (the features\' batch), got shape {z.shape}')
    logits.append(z)
  pairs = list(itertools.combinations(range(num_samples), 2))
  total = sum(symmetric_kl(logits[i], logits[j], temperature, direction) for i, j in pairs)
  return total / len(pairs)


def stage_head_fn(model, variables, position: int, *, train: bool) -> Callable:
  """Head for the position ablation (paper Table 12): stage-`position` feature map -> logits.

  `x ↦ model.head(model.from_stage(position, x, train))`. With `train=True` the BatchNorm
  layers of the remaining stages normalise with the batch statistics of the (masked) input they
  are given, and their running-average updates are discarded: the running averages are the
  clean forward pass's business, so the masked copies never move them (applied with
  `mutable=['batch_stats']`, the update dropped).

  Args:
    model: a Linen module with `from_stage(k, x, train)` and `head(features)`.
    variables: its variables (`params`, and `batch_stats` if any).
    position: stage index 1..4; 4 means the last stage's map (then only pooling remains).
    train: BatchNorm mode of the remaining stages.
  Returns:
    `head_fn(x)`: `[batch, H, W, C]` -> `[batch, classes]`.
  """
  if position not in (1, 2, 3, 4):
    raise ValueError(f'position must be one of 1, 2, 3, 4, got {position!r}')

  def head_fn(x):
    if train:
      feats, _ = model.apply(variables, position, x, train=True, method=model.from_stage,
                             mutable=['batch_stats'])
    else:
      feats = model.apply(variables, position, x, train=False, method=model.from_stage)
    return model.apply(variables, feats, method=model.head)

  return head_fn
