"""Out-of-distribution detection metrics on the host (`docs/evaluation.md` §5, cited as §).

Every function takes the scores of all in-distribution (`[n_in]`) and out-of-distribution
(`[n_out]`) examples at once, higher = more in-distribution, and uses sklearn's ROC and
average-precision routines; in-distribution is the positive class (§5.3). They reject NaN or
inf scores; `worst_case_scores` first gives an example without a score (non-finite logits,
`metrics.max_log_softmax` -> NaN) the rank that hurts detection most, so it can never help.
"""
from typing import Dict, Tuple

import numpy as np
from sklearn import metrics as sk_metrics


def _labels_and_scores(scores_in, scores_out) -> Tuple[np.ndarray, np.ndarray]:
  """y = 1 for in-distribution (the positive class, §5.3), scores as float64."""
  scores_in = np.asarray(scores_in, np.float64).reshape(-1)
  scores_out = np.asarray(scores_out, np.float64).reshape(-1)
  for name, scores in (('scores_in', scores_in), ('scores_out', scores_out)):
    if scores.size == 0:
      raise ValueError(f'{name} is empty; OOD metrics need both in- and out-of-distribution scores')
    if not np.all(np.isfinite(scores)):
      raise ValueError(f'{name} has NaN or inf; compute scores as max log-softmax in '
                       'float32 (§5.1) and rank examples without one by worst_case_scores')
  labels = np.concatenate([np.ones_like(scores_in), np.zeros_like(scores_out)])
  return labels, np.concatenate([scores_in, scores_out])


def worst_case_scores(scores_in, scores_out) -> Tuple[np.ndarray, np.ndarray, int, int]:
  """Replaces non-finite scores by the worst case for detection.

  A non-finite in-distribution score goes below, and a non-finite OOD score above, every
  finite score of either side (min − 1 and max + 1; −1 and +1 when none is finite). So an
  in-distribution example without a score looks out-of-distribution and vice versa: FPR95,
  detection error, AUROC and both AUPRs are the worst they can be given the other scores.

  Returns:
    (scores_in, scores_out as float64, how many were non-finite in each).
  """
  scores_in = np.asarray(scores_in, np.float64).reshape(-1)
  scores_out = np.asarray(scores_out, np.float64).reshape(-1)
  bad_in, bad_out = ~np.isfinite(scores_in), ~np.isfinite(scores_out)
  finite = np.concatenate([scores_in[~bad_in], scores_out[~bad_out]])
  low, high = (finite.min() - 1.0, finite.max() + 1.0) if finite.size else (-1.0, 1.0)
  return (np.where(bad_in, low, scores_in), np.where(bad_out, high, scores_out),
          int(bad_in.sum()), int(bad_out.sum()))


def _roc(scores_in, scores_out) -> Tuple[np.ndarray, np.ndarray]:
  """(fpr, tpr) at every distinct score plus +inf, rule "in iff score >= threshold" (§5.4)."""
  fpr, tpr, _ = sk_metrics.roc_curve(*_labels_and_scores(scores_in, scores_out),
                                     drop_intermediate=False)
  return fpr, tpr


def fpr_at_tpr(scores_in, scores_out, tpr: float = 0.95) -> float:
  """FPR at the largest threshold whose TPR >= `tpr` (§5.4, FPR95; in-distribution positive)."""
  fprs, tprs = _roc(scores_in, scores_out)
  return float(fprs[np.searchsorted(tprs, tpr, side='left')])


def detection_error(scores_in, scores_out) -> float:
  """min over thresholds of ½(1 − TPR) + ½FPR, equal priors (§5.4; ODIN `calMetric.py`)."""
  fprs, tprs = _roc(scores_in, scores_out)
  return float(np.min(0.5 * (1.0 - tprs) + 0.5 * fprs))


def detection_error_at_tpr(scores_in, scores_out, tpr: float = 0.95) -> float:
  """½(1 − TPR(δ)) + ½FPR(δ) at the FPR95 threshold δ (§5.4 secondary; ODIN paper text)."""
  fprs, tprs = _roc(scores_in, scores_out)
  i = np.searchsorted(tprs, tpr, side='left')
  return float(0.5 * (1.0 - tprs[i]) + 0.5 * fprs[i])


def auroc(scores_in, scores_out) -> float:
  """Area under the ROC curve, ties ½ (§5.4), via `roc_auc_score`."""
  return float(sk_metrics.roc_auc_score(*_labels_and_scores(scores_in, scores_out)))


def aupr_in(scores_in, scores_out) -> float:
  """Average precision, in-distribution positive, no interpolation (§5.4)."""
  return float(sk_metrics.average_precision_score(*_labels_and_scores(scores_in, scores_out)))


def aupr_out(scores_in, scores_out) -> float:
  """Average precision with OOD positive and score −s (§5.4)."""
  labels, scores = _labels_and_scores(scores_in, scores_out)
  return float(sk_metrics.average_precision_score(1 - labels, -scores))


def ood_metrics(scores_in, scores_out) -> Dict[str, float]:
  """The five §5.4 metrics; scores are higher-is-in-distribution, `[n_in]` and `[n_out]`.

  Only the ranking matters: a strictly increasing transform (e.g. log) changes nothing.
  Keys: `fpr95`, `detection_error`, `auroc`, `aupr_in`, `aupr_out`.
  """
  return {
      'fpr95': fpr_at_tpr(scores_in, scores_out, 0.95),
      'detection_error': detection_error(scores_in, scores_out),
      'auroc': auroc(scores_in, scores_out),
      'aupr_in': aupr_in(scores_in, scores_out),
      'aupr_out': aupr_out(scores_in, scores_out),
  }
