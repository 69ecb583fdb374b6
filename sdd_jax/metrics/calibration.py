"""Calibration beyond the 10-bin top-label ECE: the Brier score, class-wise ECE and equal-mass
(adaptive) ECE (docs/evaluation.md §2.2-2.4). The 10-bin ECE itself is in `classification.py`.

Brier and class-wise ECE reduce per batch to masked sums (jit-able, `[batch]` or `[classes,
bins]`) that add up exactly across batches and devices; equal-mass ECE needs every confidence
sorted and runs on the host. Non-finite logits are never scored well (§0): such an example's
probability vector is taken as all mass on a wrong class, (y + 1) mod K, so its Brier score is
2 (the worst) and each class-wise ECE charges it the largest gap; for equal-mass ECE it has
confidence 1.0 and is wrong, ranked above every finite confidence (`selective.ranked`).
"""
from typing import Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax.metrics import classification
from sdd_jax.metrics import selective


def scored_probs(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """softmax(z) `[batch, classes]` float32 or wider; a row with a NaN or ±inf logit becomes the
  one-hot of the wrong class (y + 1) mod K (the worst case; needs K >= 2)."""
  logits = jnp.asarray(logits)
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  num_classes = logits.shape[-1]
  worst = jax.nn.one_hot((labels + 1) % num_classes, num_classes, dtype=logits.dtype)
  finite = classification.finite_rows(logits)[:, None]
  return jnp.where(finite, jax.nn.softmax(jnp.where(finite, logits, 0.0), axis=-1), worst)


def brier(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Multi-class Brier score per example (Brier 1950): Σ_k (p_k − 1[k = y])², in [0, 2].

  Args:
    logits: `[batch, classes]`.
    labels: `[batch]` ints.
  Returns:
    `[batch]`; 2.0 (the worst) for a row with a NaN or ±inf logit.
  """
  probs = scored_probs(logits, labels)
  targets = jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
  values = jnp.sum(jnp.square(probs - targets), axis=-1)
  return jnp.where(classification.finite_rows(logits), values, 2.0)


def classwise_bin_stats(logits: jax.Array, labels: jax.Array, mask: Optional[jax.Array] = None,
                        num_bins: int = 10) -> Dict[str, jax.Array]:
  """Per-class, per-bin sums for class-wise ECE over the masked examples (§2.3).

  Class k's bins are the right-closed ((m−1)/M, m/M] of §2 applied to p_k
  (`classification.calibration_bin_index`; p_k = 0 goes in the first bin).

  Args:
    logits: `[batch, classes]`.
    labels: `[batch]` ints.
    mask: `[batch]`, 1 for real examples and 0 for padding; None counts every row.
    num_bins: M.
  Returns:
    dict of `[classes, num_bins]` arrays: `count`, `label_sum` (Σ 1[y = k]) and `prob_sum`
    (Σ p_k) of the examples in each bin.
  """
  probs = scored_probs(logits, labels)
  dtype = probs.dtype
  mask = jnp.ones(probs.shape[:1], dtype) if mask is None else jnp.asarray(mask, dtype)
  bins = jax.nn.one_hot(classification.calibration_bin_index(probs, num_bins), num_bins,
                        dtype=dtype) * mask[:, None, None]  # [batch, classes, bins]
  targets = jax.nn.one_hot(labels, probs.shape[-1], dtype=dtype)
  return {'count': bins.sum(axis=0),
          'label_sum': (bins * targets[:, :, None]).sum(axis=0),
          'prob_sum': (bins * probs[:, :, None]).sum(axis=0)}


# ----------------------------------------------------------------------------- host-side, NumPy


def classwise_ece_from_bin_stats(stats: Mapping[str, np.ndarray]) -> Tuple[float, np.ndarray]:
  """Class-wise ECE (Kull et al. 2019; Nixon et al. 2019, §2.3) from summed bin stats:

    (1/K) Σ_k Σ_m |B_mk|/N · |freq_k(B_mk) − conf_k(B_mk)|,

  freq_k the fraction of B_mk labelled k and conf_k its mean p_k; empty bins contribute 0.

  Args:
    stats: `classwise_bin_stats` summed over every batch (`[classes, bins]` each).
  Returns:
    (class-wise ECE as a fraction, the per-class ECE `[classes]`).
  """
  count = np.asarray(stats['count'], np.float64)
  label_sum = np.asarray(stats['label_sum'], np.float64)
  prob_sum = np.asarray(stats['prob_sum'], np.float64)
  total = count[0].sum() if count.size else 0.0
  if total <= 0:
    raise ValueError('classwise_ece_from_bin_stats: no examples (count sums to 0); check the '
                     'eval mask')
  per_class = np.abs(label_sum - prob_sum).sum(axis=1) / total  # |B|·|freq − conf| = |Σy − Σp|
  return float(per_class.mean()), per_class


def adaptive_ece(confidences: np.ndarray, correct: np.ndarray,
                 nonfinite: Optional[np.ndarray] = None,
                 num_bins: int = 10) -> Tuple[float, List[dict]]:
  """Equal-mass (adaptive) top-label ECE (§2.4): Σ_m |B_m|/N · |acc − conf| over `num_bins` bins
  of equal counts in increasing confidence: Nixon et al.'s (2019) adaptive binning applied to the
  max-softmax confidence (Roelofs et al. 2022's ECE_EM; Nixon et al.'s ACE bins every class).

  The N examples are sorted by confidence and cut into M runs of consecutive ranks; when M does
  not divide N, the first N mod M bins (the least confident) hold one example more
  (`np.array_split`). Ties are split by `selective.ranked`: each example of a group of equal
  confidences takes its group's mean correctness, so a group cut by a bin edge adds its mean
  accuracy to both bins, and no result depends on the order of the data. With N < M the
  remaining bins are empty and contribute 0.

  Args:
    confidences, correct, nonfinite: as `selective.ranked`.
    num_bins: M.
  Returns:
    (ECE as a fraction, table): one dict per non-empty bin with `bin`, `lower`, `upper` (its
    smallest and largest confidence), `count`, `acc`, `conf`.
  """
  confidences, correct = (x[::-1] for x in selective.ranked(confidences, correct, nonfinite))
  n = confidences.size
  if n == 0:
    raise ValueError('adaptive_ece: no examples (check the eval mask)')
  ece, table = 0.0, []
  for m, (conf, acc) in enumerate(zip(np.array_split(confidences, num_bins),
                                      np.array_split(correct, num_bins))):
    if conf.size:
      ece += conf.size / n * abs(acc.mean() - conf.mean())
      table.append({'bin': m, 'lower': float(conf[0]), 'upper': float(conf[-1]),
                    'count': int(conf.size), 'acc': float(acc.mean()), 'conf': float(conf.mean())})
  return float(ece), table
