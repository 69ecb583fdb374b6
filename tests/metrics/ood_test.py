"""OOD detection metrics (docs/evaluation.md §5.4): the spec's test vectors and an independent NumPy
threshold sweep, with sklearn as a second reference."""
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from sdd_jax.metrics import ood as ood_metrics

T1_IN = [0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.90, 0.85, 0.80, 0.75, 0.70,
         0.65, 0.60, 0.55, 0.50, 0.40, 0.30]
T1_OUT = [0.95, 0.88, 0.72, 0.62, 0.45, 0.35, 0.25, 0.20, 0.15, 0.10]
T1 = dict(fpr95=0.5, detection_error=0.25, auroc=0.7975, aupr_in=0.8739442584,
          aupr_out=0.7558299595)
T2_IN = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1]
T2_OUT = [0.85, 0.65, 0.45, 0.35, 0.25, 0.15, 0.12, 0.08, 0.05, 0.02]
T2 = dict(fpr95=0.7, detection_error=0.3, auroc=0.73, aupr_in=0.7145378151,
          aupr_out=0.7838815789)


def _brute_force(s_in, s_out):
  """Independent NumPy threshold sweep over the distinct scores plus +inf, "in iff s >= δ"."""
  s_in, s_out = np.asarray(s_in, np.float64), np.asarray(s_out, np.float64)
  thresholds = np.concatenate([np.unique(np.concatenate([s_in, s_out])), [np.inf]])
  tpr = np.array([(s_in >= t).mean() for t in thresholds])
  fpr = np.array([(s_out >= t).mean() for t in thresholds])
  pairs = s_in[:, None] - s_out[None, :]
  auroc = ((pairs > 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size

  def average_precision(pos, neg):
    ap, last_recall = 0.0, 0.0
    for t in np.unique(np.concatenate([pos, neg]))[::-1]:  # Descending thresholds.
      tp, fp = (pos >= t).sum(), (neg >= t).sum()
      recall = tp / pos.size
      ap += (recall - last_recall) * tp / (tp + fp)
      last_recall = recall
    return ap

  at95 = np.argmax(np.where(tpr >= 0.95, thresholds, -np.inf))  # Largest δ with TPR >= 0.95.
  return {
      'fpr95': fpr[tpr >= 0.95].min(),
      'detection_error': (0.5 * (1 - tpr) + 0.5 * fpr).min(),
      'detection_error_at_tpr95': 0.5 * (1 - tpr[at95]) + 0.5 * fpr[at95],
      'auroc': auroc,
      'aupr_in': average_precision(s_in, s_out),
      'aupr_out': average_precision(-s_out, -s_in),
  }


@pytest.mark.parametrize('s_in,s_out,expected,de95', [(T1_IN, T1_OUT, T1, 0.275),
                                                       (T2_IN, T2_OUT, T2, 0.35)])
def test_ood_vectors(s_in, s_out, expected, de95):
  for transform in (lambda s: s, np.log):  # T1 note: a log transform changes nothing.
    got = ood_metrics.ood_metrics(transform(np.asarray(s_in)), transform(np.asarray(s_out)))
    assert set(got) == set(expected)
    for key, value in expected.items():
      assert got[key] == pytest.approx(value, abs=1e-10), key
    assert ood_metrics.detection_error_at_tpr(transform(np.asarray(s_in)),
                                          transform(np.asarray(s_out))) == pytest.approx(de95)


@pytest.mark.parametrize('seed', range(6))
def test_ood_metrics_match_sklearn_and_brute_force(seed):
  rng = np.random.default_rng(seed)
  n_in, n_out = rng.integers(5, 60, size=2)
  s_in = np.round(rng.normal(1.0, 1.0, size=n_in), 1)  # Rounding makes in/out ties.
  s_out = np.round(rng.normal(0.0, 1.0, size=n_out), 1)
  got = ood_metrics.ood_metrics(s_in, s_out)
  brute = _brute_force(s_in, s_out)
  for key, value in got.items():
    assert value == pytest.approx(brute[key], abs=1e-12), key
  assert ood_metrics.detection_error_at_tpr(s_in, s_out) == pytest.approx(
      brute['detection_error_at_tpr95'], abs=1e-12)
  y = np.r_[np.ones(n_in), np.zeros(n_out)]
  s = np.r_[s_in, s_out]
  assert got['auroc'] == pytest.approx(sk_metrics.roc_auc_score(y, s))
  assert got['aupr_in'] == pytest.approx(sk_metrics.average_precision_score(y, s))
  assert got['aupr_out'] == pytest.approx(sk_metrics.average_precision_score(1 - y, -s))
  shifted = ood_metrics.ood_metrics(np.exp(s_in), np.exp(s_out))  # Strictly increasing transform.
  for key, value in got.items():
    assert shifted[key] == pytest.approx(value, abs=1e-12), key


def test_ood_metrics_reject_nan_and_empty():
  with pytest.raises(ValueError, match='scores_out has NaN'):
    ood_metrics.ood_metrics([0.1, 0.2], [np.nan])
  with pytest.raises(ValueError, match='scores_in is empty'):
    ood_metrics.ood_metrics([], [0.1])
