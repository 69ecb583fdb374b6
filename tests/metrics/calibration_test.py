"""Tests for sdd_jax.metrics.calibration: Brier, class-wise ECE and equal-mass ECE against
hand-worked numbers, brute-force loops, scikit-learn's binary Brier score, masking and the
non-finite rule (docs/evaluation.md §2.2-2.4)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from sdd_jax.metrics import calibration

E1_CONF = [0.95, 0.92, 0.85, 0.81, 0.66, 0.62, 0.55, 0.45, 0.35, 0.28]
E1_CORRECT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1]


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _classwise_by_loop(probs, labels, num_bins=10):
  """Brute force: for each class and each right-closed bin ((m-1)/M, m/M] (p = 0 in the first),
  |B|/N * |fraction labelled k - mean p_k|, summed over bins, then the mean over classes."""
  n, num_classes = probs.shape
  per_class = []
  for k in range(num_classes):
    total = 0.0
    for m in range(num_bins):
      lower, upper = m / num_bins, (m + 1) / num_bins
      members = [i for i in range(n) if lower < probs[i, k] <= upper or (m == 0 and probs[i, k] == 0)]
      if members:
        freq = np.mean([labels[i] == k for i in members])
        total += len(members) / n * abs(freq - np.mean(probs[members, k]))
    per_class.append(total)
  return np.mean(per_class)


def _classwise(logits, labels, mask=None):
  stats = jax.jit(calibration.classwise_bin_stats)(jnp.asarray(logits, jnp.float32),
                                                   jnp.asarray(labels), mask)
  return calibration.classwise_ece_from_bin_stats(jax.device_get(stats))


# ----------------------------------------------------------------------------- Brier (§2.2)


def test_brier_hand_worked_under_jit():
  logits = np.log([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [1.0, 1.0, 1.0]])
  logits[2, 1] = np.nan
  got = jax.jit(calibration.brier)(jnp.asarray(logits, jnp.float32), jnp.array([0, 2, 0]))
  # 0.3² + 0.2² + 0.1² = 0.14; 0.7² + 0.2² + 0.9² = 1.34; a NaN row scores the worst, 2.
  np.testing.assert_allclose(got, [0.14, 1.34, 2.0], rtol=1e-6)


def test_brier_is_the_sum_of_sklearns_binary_scores():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(40, 5)) * 3
  labels = rng.integers(0, 5, size=40)
  probs = _softmax(logits)
  expected = sum(sk_metrics.brier_score_loss(labels == k, probs[:, k]) for k in range(5))
  got = np.mean(calibration.brier(jnp.asarray(logits, jnp.float32), jnp.asarray(labels)))
  assert got == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- class-wise ECE (§2.3)


def test_classwise_hand_worked():
  # Class 0: p = .85 (y0 = 1) | .95 (0) | {.28, .22} (0, 0): (.15 + .95)/4 + 2/4 * .25 = .4.
  # Class 1: p = .15 (0) | .05 (1) | {.72, .78} (1, 1): (.15 + .95)/4 + 2/4 * .25 = .4.
  probs = np.array([[.85, .15], [.95, .05], [.28, .72], [.22, .78]])
  ece, per_class = _classwise(np.log(probs), [0, 1, 1, 1])
  assert ece == pytest.approx(0.4, abs=1e-6)
  np.testing.assert_allclose(per_class, [0.4, 0.4], atol=1e-6)


def test_classwise_equals_a_loop_and_ignores_masked_rows():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(30, 4)) * 2
  labels = rng.integers(0, 4, size=30)
  expected = _classwise_by_loop(_softmax(logits), labels)
  assert _classwise(logits, labels)[0] == pytest.approx(expected, abs=1e-6)
  padded = np.concatenate([logits, np.full((6, 4), np.nan), rng.normal(size=(6, 4))])
  mask = jnp.asarray(np.r_[np.ones(30), np.zeros(12)], jnp.float32)
  got = _classwise(padded, np.r_[labels, np.zeros(12, int)], mask)[0]
  assert got == pytest.approx(expected, abs=1e-6)


def test_classwise_nonfinite_row_scores_the_largest_gap():
  # A NaN row labelled 0 counts as p = (0, 1): class 0 has p 0 and y 1, class 1 p 1 and y 0.
  ece, per_class = _classwise([[np.nan, 0.0]], [0])
  assert ece == 1.0 and list(per_class) == [1.0, 1.0]


# ----------------------------------------------------------------------------- equal-mass ECE (§2.4)


def _adaptive_by_loop(confidences, correct, num_bins):
  """Brute force on distinct confidences: sort ascending; bin m takes the next
  n // M + (1 if m < n % M else 0) examples."""
  order = np.argsort(confidences)
  n, start, total = len(order), 0, 0.0
  for m in range(num_bins):
    size = n // num_bins + (1 if m < n % num_bins else 0)
    members = order[start:start + size]
    start += size
    if size:
      total += size / n * abs(np.mean(np.asarray(correct)[members]) -
                              np.mean(np.asarray(confidences)[members]))
  return total


def test_adaptive_hand_worked_e1():
  # 10 bins of one example each: mean |a - c| = 4.02 / 10.
  assert calibration.adaptive_ece(E1_CONF, E1_CORRECT)[0] == pytest.approx(0.402)
  # 2 bins of 5: {.28 .35 .45 .55 .62}: acc .4, conf .45; {.66 .81 .85 .92 .95}: acc .8, conf .838.
  assert calibration.adaptive_ece(E1_CONF, E1_CORRECT, num_bins=2)[0] == pytest.approx(0.044)
  # 7 examples in 3 bins: the least confident bin takes the remainder.
  _, table = calibration.adaptive_ece(E1_CONF[:7], E1_CORRECT[:7], num_bins=3)
  assert [row['count'] for row in table] == [3, 2, 2]
  assert (table[0]['lower'], table[0]['upper']) == (0.55, 0.66)


@pytest.mark.parametrize('n, num_bins', [(53, 10), (8, 10), (40, 3)])
def test_adaptive_equals_a_loop(n, num_bins):
  rng = np.random.default_rng(n)
  confidences = rng.permutation(np.linspace(0.2, 0.99, n))
  correct = (rng.random(n) < confidences).astype(int)
  got, table = calibration.adaptive_ece(confidences, correct, num_bins=num_bins)
  assert got == pytest.approx(_adaptive_by_loop(confidences, correct, num_bins), abs=1e-12)
  assert sum(row['count'] for row in table) == n and len(table) == min(n, num_bins)


def test_adaptive_ties_share_their_mean_accuracy_and_nonfinite_is_worst():
  # Ascending: 0.5 x 3 (mean correct 1/3), 0.9; bins {.5, .5}: |1/3 - .5|, {.5, .9}: |2/3 - .7|.
  got = calibration.adaptive_ece([0.5, 0.9, 0.5, 0.5], [1, 1, 0, 0], num_bins=2)[0]
  assert got == pytest.approx(0.5 / 6 + 0.5 / 30)
  assert calibration.adaptive_ece([0.5, 0.5, 0.5, 0.9], [0, 0, 1, 1], num_bins=2)[0] == (
      pytest.approx(got))
  # A non-finite row (any confidence, "correct") is confidence 1.0 and wrong, above 0.9.
  got = calibration.adaptive_ece([0.9, 0.2], [1, 1], nonfinite=[False, True], num_bins=2)[0]
  assert got == pytest.approx(0.5 * 0.1 + 0.5 * 1.0)
