"""NaN is never scored (issue 11): metrics/classification.py and metrics/ood.py on logits with
NaN and ±inf rows, against hand-worked numbers and an independent NumPy reference, under
jax.jit, with padding."""
import jax
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from sdd_jax.metrics import classification as metrics
from sdd_jax.metrics import ood as ood_metrics
from sdd_jax.evaluators import accuracy

NAN, INF = np.nan, np.inf
# Row 0 finite and right; 1 NaN; 2 +inf at the label (nothing is "greater"); 3 -inf elsewhere
# (its argmax is still the label); 4 finite, wrong at top-1, right at top-2; 5 all NaN, padding.
LOGITS = np.array([[1, 2, 0, 0], [NAN, 0, 0, 0], [INF, 0, 0, 0], [0, -INF, 3, 0],
                   [0, 0, 0, 5], [NAN, NAN, NAN, NAN]], np.float32)
LABELS = np.array([1, 1, 0, 2, 0, 0], np.int32)
MASK = np.array([1, 1, 1, 1, 1, 0], np.float32)
BAD = np.array([0, 1, 1, 1, 0, 1], np.float32)


def _np_log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


# By hand: row 0 p = e^2 / (e + e^2 + 2); row 4 p_3 = e^5 / (e^5 + 3), p_0 = 1 / (e^5 + 3).
C0 = np.e ** 2 / (np.e + np.e ** 2 + 2)
C4 = np.e ** 5 / (np.e ** 5 + 3)
NLL0, NLL4 = -np.log(C0), np.log(np.e ** 5 + 3)


def test_topk_counts_nonfinite_rows_as_wrong_under_jit():
  top1 = jax.jit(lambda z, y: metrics.topk_correct(z, y, 1))(LOGITS, LABELS)
  top2 = jax.jit(lambda z, y: metrics.topk_correct(z, y, 2))(LOGITS, LABELS)
  np.testing.assert_array_equal(top1, [1, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(top2, [1, 0, 0, 0, 1, 0])
  np.testing.assert_array_equal(jax.jit(metrics.nonfinite_rows)(LOGITS), BAD)


def test_nll_is_inf_for_nonfinite_rows():
  got = np.asarray(jax.jit(metrics.nll)(LOGITS, LABELS))
  np.testing.assert_allclose(got[[0, 4]], [NLL0, NLL4], rtol=1e-6)
  assert np.all(got[[1, 2, 3, 5]] == np.inf)


def test_confidence_one_and_wrong_for_nonfinite_rows():
  conf, correct = jax.jit(metrics.confidence_and_correct)(LOGITS, LABELS)
  np.testing.assert_allclose(conf, [C0, 1, 1, 1, C4, 1], rtol=1e-6)
  np.testing.assert_array_equal(correct, [1, 0, 0, 0, 0, 0])


def test_ood_score_is_nan_for_nonfinite_rows():
  for t in (1.0, 1000.0):
    got = np.asarray(jax.jit(metrics.max_log_softmax, static_argnums=1)(LOGITS, t))
    np.testing.assert_allclose(got[[0, 4]], _np_log_softmax(LOGITS[[0, 4]] / t).max(-1),
                               rtol=1e-5)
    assert np.all(np.isnan(got[[1, 2, 3, 5]]))


def _guo_ece(conf, correct, num_bins=10):
  """ECE by Guo et al.'s loop over right-closed bins (float64)."""
  conf, correct = np.asarray(conf, np.float64), np.asarray(correct, np.float64)
  ece = 0.0
  for m in range(num_bins):
    inside = (conf > m / num_bins) & (conf <= (m + 1) / num_bins)
    if inside.any():
      ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
  return ece


def test_batch_sums_with_padding_by_hand():
  sums = jax.device_get(accuracy.batch_sums(LOGITS, LABELS, MASK))
  assert (sums['count'], sums['top1'], sums['top5'], sums['nonfinite']) == (5, 1, 5 - 3, 3)
  assert sums['nll'] == np.inf  # three of the five real rows put no probability on the label
  ece, _ = metrics.ece_from_bin_stats(sums['bins'])
  # Bins: row 0 alone in bin 6 (0.61, right); rows 1-4 in bin 9 (conf 1, 1, 1, 0.98; none right).
  by_hand = 0.2 * (1 - C0) + 0.8 * (3 + C4) / 4
  assert ece == pytest.approx(by_hand, rel=1e-6)
  assert ece == pytest.approx(_guo_ece([C0, 1, 1, 1, C4], [1, 0, 0, 0, 0]), rel=1e-6)
  # Padding with NaN logits and inf NLL adds nothing (inf * 0 would be NaN).
  keep = np.array([1, 0, 0, 0, 1, 0], np.float32)
  sums = jax.device_get(accuracy.batch_sums(LOGITS, LABELS, keep))
  assert (sums['count'], sums['top1'], sums['nonfinite']) == (2, 1, 0)
  assert sums['nll'] == pytest.approx(NLL0 + NLL4, rel=1e-6)


def _np_sums(logits, labels, k):
  """Independent NumPy top-1/top-k/NLL/non-finite sums over the given (real) rows."""
  finite = np.isfinite(logits).all(-1)
  order = np.argsort(-np.where(finite[:, None], logits, 0), axis=-1, kind='stable')
  rank = np.argmax(order == labels[:, None], axis=-1)
  lsm = _np_log_softmax(np.where(finite[:, None], logits, 0))
  nll = np.where(finite, -lsm[np.arange(len(labels)), labels], np.inf)
  return {'top1': np.sum(finite & (rank < 1)), 'top5': np.sum(finite & (rank < k)),
          'nll': nll.sum(), 'nonfinite': np.sum(~finite), 'count': len(labels)}


@pytest.mark.parametrize('with_bad', [False, True])
def test_batch_sums_match_numpy_on_random_batches(with_bad):
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(64, 10)).astype(np.float32) * 3
  labels = rng.integers(0, 10, 64).astype(np.int32)
  mask = (rng.random(64) < 0.7).astype(np.float32)
  if with_bad:
    rows = rng.choice(64, 20, replace=False)
    for i, value in zip(rows, np.resize([NAN, INF, -INF], 20)):
      logits[i, rng.integers(0, 10)] = value
  sums = jax.device_get(accuracy.batch_sums(logits, labels, mask))
  keep = mask.astype(bool)
  want = _np_sums(logits[keep], labels[keep], 5)
  for key in ('count', 'top1', 'top5', 'nonfinite'):
    assert sums[key] == want[key], key
  assert sums['nll'] == pytest.approx(want['nll'], rel=1e-5)
  assert (want['nonfinite'] > 0) == with_bad


def test_worst_case_scores_by_hand():
  s_in, s_out, bad_in, bad_out = ood_metrics.worst_case_scores([0.5, NAN, 0.2], [0.1, INF, -INF])
  np.testing.assert_array_equal(s_in, [0.5, -0.9, 0.2])  # below min 0.1 of every finite score
  np.testing.assert_array_equal(s_out, [0.1, 1.5, 1.5])  # above max 0.5
  assert (bad_in, bad_out) == (1, 2)
  s_in, s_out, bad_in, bad_out = ood_metrics.worst_case_scores([NAN], [NAN, NAN])
  assert ood_metrics.auroc(s_in, s_out) == 0.0 and (bad_in, bad_out) == (1, 2)
  assert ood_metrics.fpr_at_tpr(s_in, s_out) == 1.0


def test_a_nonfinite_score_never_helps_detection():
  """Whatever value a NaN example would have had, worst-case ranking scores no better."""
  rng = np.random.default_rng(0)
  for _ in range(20):
    s_in, s_out = rng.normal(1, 1, 30), rng.normal(0, 1, 30)
    lost_in, lost_out = rng.random(30) < 0.2, rng.random(30) < 0.2
    worst = ood_metrics.worst_case_scores(np.where(lost_in, NAN, s_in),
                                          np.where(lost_out, NAN, s_out))[:2]
    got, true = ood_metrics.ood_metrics(*worst), ood_metrics.ood_metrics(s_in, s_out)
    y = np.r_[np.ones(30), np.zeros(30)]
    assert got['auroc'] == pytest.approx(sk_metrics.roc_auc_score(y, np.concatenate(worst)))
    for key in ('auroc', 'aupr_in', 'aupr_out'):
      assert got[key] <= true[key] + 1e-12, key
    for key in ('fpr95', 'detection_error'):
      assert got[key] >= true[key] - 1e-12, key
