"""Selective prediction: the risk-coverage curve, AURC and E-AURC (docs/evaluation.md §2.1).

Geifman, Uziel and El-Yaniv (2019), "Bias-reduced uncertainty estimation for deep neural
classifiers", ICLR: rank the N examples by confidence (max softmax, most confident first); the
selective risk at coverage i/N is the error rate of the first i, and

  AURC = (1/N) Σ_{i=1}^{N} risk(i),   E-AURC = AURC − AURC*,

AURC* being the AURC of the optimal ranking (every correct example before every wrong one) at
the same error rate. Both are the discrete sums, as PS-KD reports them ×1000 (Kim et al. 2021,
lgcnsai/PS-KD-Pytorch `utils/metric.py`, `calc_aurc`): with n_e wrong examples,
AURC* = (1/N) Σ_{j=1}^{n_e} j / (N − n_e + j). Geifman et al.'s closed form
r + (1 − r) ln(1 − r), r = n_e / N, is the N → ∞ limit of that sum; the sum is exact for the
sample, so E-AURC is never negative, is 0 for a perfect ranking, and is defined at r = 1.

Ties: examples of equal confidence have no order, so each takes its tie group's mean error;
the risk curve is then the exact average over every order of the ties, and no result depends
on the order of the data. An example whose logits held a NaN or ±inf (`nonfinite`) counts as
wrong and is ranked above every finite confidence (docs/evaluation.md §0: never scored well).
"""
from typing import Dict, Optional, Tuple

import numpy as np


def ranked(confidences: np.ndarray, correct: np.ndarray,
           nonfinite: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
  """Examples in decreasing confidence, ties given their group's mean correctness.

  Args:
    confidences: `[n]` max softmax probabilities.
    correct: `[n]` in {0, 1}.
    nonfinite: `[n]` bool (optional): examples with a NaN or ±inf logit; they come first, wrong,
      with confidence 1.0 (ties among them only).
  Returns:
    (confidences `[n]` float64 non-increasing, correct `[n]` float64 in [0, 1]), where every
    run of equal confidences (equal rank keys) holds its mean correctness.
  """
  confidences = np.asarray(confidences, np.float64).ravel()
  correct = np.asarray(correct, np.float64).ravel()
  if confidences.shape != correct.shape:
    raise ValueError(f'confidences {confidences.shape} and correct {correct.shape} differ')
  key = confidences
  if nonfinite is not None:
    nonfinite = np.asarray(nonfinite, bool).ravel()
    key = np.where(nonfinite, np.inf, confidences)
    confidences = np.where(nonfinite, 1.0, confidences)
    correct = np.where(nonfinite, 0.0, correct)
  order = np.argsort(-key, kind='stable')
  key, confidences, correct = key[order], confidences[order], correct[order]
  starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
  sizes = np.diff(np.r_[starts, key.size])
  means = np.add.reduceat(correct, starts) / sizes if key.size else correct
  return confidences, np.repeat(means, sizes)


def risk_coverage(confidences: np.ndarray, correct: np.ndarray,
                  nonfinite: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
  """The risk-coverage curve: (coverage i/N, risk of the i most confident), i = 1..N, `[N]` each.

  Ties and non-finite examples as in `ranked`."""
  _, correct = ranked(confidences, correct, nonfinite)
  i = np.arange(1, correct.size + 1)
  return i / correct.size, np.cumsum(1.0 - correct) / i


def aurc(confidences: np.ndarray, correct: np.ndarray,
         nonfinite: Optional[np.ndarray] = None) -> Dict[str, float]:
  """AURC and E-AURC of max-softmax ranking, as fractions (×1000 to report like PS-KD).

  Args: as `ranked`.
  Returns:
    {'aurc', 'eaurc', 'optimal_aurc' (AURC*, the discrete sum), 'optimal_aurc_closed_form'
    (r + (1 − r) ln(1 − r), for comparison; inf-free: 1.0 at r = 1), 'risk' (r, the error
    rate)}.
  """
  _, risk = risk_coverage(confidences, correct, nonfinite)
  n = risk.size
  if n == 0:
    raise ValueError('aurc: no examples (check the eval mask)')
  errors = risk[-1] * n  # the tie means sum back to the whole count
  n_errors = int(round(errors))
  j = np.arange(1, n_errors + 1)
  optimal = float(np.sum(j / (n - n_errors + j)) / n)
  r = n_errors / n
  closed = 1.0 if r == 1 else r + (1 - r) * np.log1p(-r)
  value = float(np.mean(risk))
  return {'aurc': value, 'eaurc': value - optimal, 'optimal_aurc': optimal,
          'optimal_aurc_closed_form': float(closed), 'risk': float(r)}
