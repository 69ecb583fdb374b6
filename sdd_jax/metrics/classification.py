"""Pure evaluation metrics; every formula and convention is in `docs/evaluation.md` (cited as §).

Two kinds live here:

* jit-able per-batch reductions (`jax.numpy`): per-example values `[batch]` or per-bin sums.
  Callers multiply by the eval `mask` and sum, so results add up across batches and devices.
* host-side NumPy functions that need every value at once (ECE from accumulated bin sums,
  the corruption averages are in `metrics/corruption.py`, the OOD detection metrics in
  `metrics/ood.py`.

Non-finite logits are never scored: an example whose logits hold any NaN or ±inf
(`nonfinite_rows`) is wrong for top-k, has NLL +inf (no probability on its label), confidence
1.0 and correct 0 for ECE (the largest calibration gap), and OOD score NaN, which
`ood_metrics.worst_case_scores` ranks on the losing side (Brier 2, class-wise ECE and AURC:
`metrics/calibration.py`, `metrics/selective.py`). Evaluators count such examples in
`<section>/nonfinite`.
"""
from typing import Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np



def _float(x: jax.Array) -> jax.Array:
  """Promotes to at least float32 (§0.2: no bf16/fp16 in evaluation)."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


# ----------------------------------------------------------------------------- jit-able, per batch


def finite_rows(logits: jax.Array) -> jax.Array:
  """True where every logit of the example is finite: `[batch, classes]` -> `[batch]` bool."""
  return jnp.all(jnp.isfinite(jnp.asarray(logits)), axis=-1)


def nonfinite_rows(logits: jax.Array) -> jax.Array:
  """1.0 where the example has a NaN or ±inf logit: `[batch, classes]` -> `[batch]` float32.

  Callers multiply by the eval `mask` and sum, like every other count (`<section>/nonfinite`).
  """
  return (~finite_rows(logits)).astype(jnp.float32)


def topk_correct(logits: jax.Array, labels: jax.Array, k: int = 1) -> jax.Array:
  """1.0 where the label is among the top `k` logits, ties broken by lower index first (§1).

  The label's rank is #{j: z_j > z_y} + #{j < y: z_j = z_y}; it is correct iff rank < k. For
  k = 1 a tie counts only if the first maximal index (the `argmax` rule, §0.4) is the label.
  An example with a NaN or ±inf logit is wrong (no logit is "greater" than a NaN).

  Args:
    logits: `[batch, classes]`.
    labels: `[batch]` ints.
    k: how many top classes count.
  Returns:
    `[batch]` float32 in {0, 1}.
  """
  logits = _float(logits)
  label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)
  index = jnp.arange(logits.shape[-1])
  ahead = (logits > label_logit) | ((logits == label_logit) & (index < labels[:, None]))
  return ((ahead.sum(axis=-1) < k) & finite_rows(logits)).astype(jnp.float32)


def nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Negative log-likelihood −log softmax(z)_y, `[batch, classes]`, `[batch]` -> `[batch]`.

  +inf for an example with a NaN or ±inf logit (it puts no probability on its label), so a
  mean over such examples is +inf, never a finite number that hides them.
  """
  logits = _float(logits)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  values = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
  return jnp.where(finite_rows(logits), values, jnp.inf)


def confidence_and_correct(logits: jax.Array, labels: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """Max softmax probability and top-1 correctness (§0.4, Guo et al. 2017).

  Args:
    logits: `[batch, classes]`.
    labels: `[batch]` ints.
  Returns:
    (confidences `[batch]`, correct `[batch]` float in {0, 1}). An example with a NaN or ±inf
    logit gets confidence 1.0 and correct 0: the largest gap ECE can charge.
  """
  logits = _float(logits)
  finite = finite_rows(logits)
  confidences = jnp.where(finite, jax.nn.softmax(logits, axis=-1).max(axis=-1), 1.0)
  correct = ((jnp.argmax(logits, axis=-1) == labels) & finite).astype(logits.dtype)
  return confidences, correct


def max_log_softmax(logits: jax.Array, temperature: float = 1.0) -> jax.Array:
  """OOD score max_k log softmax(z / T)_k (§5.1); T = 1 is MSP. `[batch, classes]` -> `[batch]`.

  A strictly increasing transform of ODIN's max softmax, so every OOD metric is unchanged, but
  it does not saturate to 1.0 (MSP) or collapse to ~1/K spacing at T = 1000. NaN for an
  example with a NaN or ±inf logit (no score); `ood_metrics.worst_case_scores` ranks those.
  """
  logits = _float(logits)
  scores = jax.nn.log_softmax(logits / temperature, axis=-1).max(axis=-1)
  return jnp.where(finite_rows(logits), scores, jnp.nan)


def odin_sign(grads: jax.Array) -> jax.Array:
  """ODIN's step direction (§5.1): +1 where g >= 0 (zero included), else −1. Not `jnp.sign`."""
  grads = jnp.asarray(grads)
  return jnp.where(grads >= 0, 1, -1).astype(grads.dtype)


def calibration_bin_index(confidences: jax.Array, num_bins: int = 10) -> jax.Array:
  """Right-closed bin ((m−1)/M, m/M] of each confidence, as an index 0..M−1 (§2).

  Edges m/M (m = 1..M) come from one division in the confidence dtype; the index is
  `searchsorted(edges, c, 'left')` clipped to [0, M−1], so c = 1.0 lands in the last bin. Never
  `ceil(c·M) − 1`: float32 c = 0.90000004 gives 8 there, 9 here.

  The edges are divided in NumPy and enter as constants: XLA rewrites `x / 10` as `x * 0.1`,
  which makes the float32 edge 9/10 equal 0.90000004 and puts that example back in bin 8.
  `searchsorted(edges, c, 'left')` is computed as #{m: e_m < c}, which also works on sharded
  inputs (jax 0.10's `jnp.searchsorted` fails under `jit` with a `P('data')` sharding).

  Args:
    confidences: `[batch]`.
    num_bins: M.
  Returns:
    `[batch]` int32 in [0, M−1].
  """
  confidences = jnp.asarray(confidences)
  dtype = np.dtype(confidences.dtype)
  edges = jnp.asarray(np.arange(1, num_bins + 1, dtype=dtype) / dtype.type(num_bins))
  index = (confidences[..., None] > edges).sum(axis=-1, dtype=jnp.int32)
  return jnp.clip(index, 0, num_bins - 1)


def calibration_bin_stats(confidences: jax.Array, correct: jax.Array,
                          mask: Optional[jax.Array] = None,
                          num_bins: int = 10) -> Dict[str, jax.Array]:
  """Per-bin sums for ECE over the masked examples (§2; Guo et al. 2017).

  Sums add exactly across batches and devices; `ece_from_bin_stats` turns the total into ECE.

  Args:
    confidences: `[batch]` max softmax probabilities.
    correct: `[batch]` in {0, 1}.
    mask: `[batch]`, 1 for real examples and 0 for padding; None counts every row.
    num_bins: M.
  Returns:
    dict of `[num_bins]` arrays in the confidence dtype: `count`, `correct_sum`,
    `confidence_sum`.
  """
  confidences = jnp.asarray(confidences)
  dtype = confidences.dtype
  mask = jnp.ones_like(confidences) if mask is None else jnp.asarray(mask, dtype)
  one_hot = jax.nn.one_hot(calibration_bin_index(confidences, num_bins), num_bins, dtype=dtype)
  one_hot = one_hot * mask[:, None]  # Elementwise sums, not matmuls: exact on TPU too.
  return {
      'count': one_hot.sum(axis=0),
      'correct_sum': (one_hot * jnp.asarray(correct, dtype)[:, None]).sum(axis=0),
      'confidence_sum': (one_hot * confidences[:, None]).sum(axis=0),
  }


# ----------------------------------------------------------------------------- host-side, NumPy


def ece_from_bin_stats(stats: Mapping[str, np.ndarray]) -> Tuple[float, List[dict]]:
  """ECE = Σ_m |B_m|/N · |acc(B_m) − conf(B_m)| from summed bin stats (§2, Guo et al. 2017).

  Args:
    stats: `calibration_bin_stats` output, summed over every batch (`[num_bins]` each).
  Returns:
    (ECE as a fraction (×100 to report), table): one dict per **non-empty** bin with `bin`,
    `lower`, `upper`, `count`, `acc`, `conf`; empty bins contribute 0 and are left out.
  """
  count = np.asarray(stats['count'], np.float64)
  correct_sum = np.asarray(stats['correct_sum'], np.float64)
  confidence_sum = np.asarray(stats['confidence_sum'], np.float64)
  total = count.sum()
  if total <= 0:
    raise ValueError('ece_from_bin_stats: no examples in the bin stats (count sums to 0); '
                     'check the eval mask')
  num_bins = count.shape[0]
  ece, table = 0.0, []
  for m in np.flatnonzero(count > 0):
    acc, conf = correct_sum[m] / count[m], confidence_sum[m] / count[m]
    ece += count[m] / total * abs(acc - conf)
    table.append({'bin': int(m), 'lower': float(m / num_bins), 'upper': float((m + 1) / num_bins),
                  'count': int(round(count[m])), 'acc': float(acc), 'conf': float(conf)})
  return float(ece), table


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray,
                               num_bins: int = 10) -> float:
  """ECE of `[n]` confidences and `[n]` correctness, binned in NumPy in the input dtype (§2)."""
  confidences = np.asarray(confidences)
  if not np.issubdtype(confidences.dtype, np.floating):
    confidences = confidences.astype(np.float64)
  edges = np.arange(1, num_bins + 1, dtype=confidences.dtype) / confidences.dtype.type(num_bins)
  index = np.clip(np.searchsorted(edges, confidences, side='left'), 0, num_bins - 1)
  correct = np.asarray(correct, np.float64)
  stats = {
      'count': np.bincount(index, minlength=num_bins),
      'correct_sum': np.bincount(index, weights=correct, minlength=num_bins),
      'confidence_sum': np.bincount(index, weights=confidences.astype(np.float64),
                                    minlength=num_bins),
  }
  return ece_from_bin_stats(stats)[0]
