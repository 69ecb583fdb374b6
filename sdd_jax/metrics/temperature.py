"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, §4.2):
one scalar T > 0 for all classes, p = softmax(z / T), fitted by minimising the mean NLL on
examples the network never trained on (docs/evaluation.md, "Temperature scaling").

Host-side NumPy/SciPy, float64. The fit sees only examples whose logits are all finite; the
scoring of non-finite examples is the rule of `metrics/classification.py` (wrong, NLL +inf,
confidence 1.0), which z / T keeps, since a NaN or ±inf logit stays non-finite.
"""
from typing import Dict, Tuple

import numpy as np
from scipy import optimize
from scipy import special

from sdd_jax.metrics import classification

# The search interval of T and the tolerance on log T (Brent's bounded method). A T* at a bound
# is reported as such (`at_bound`).
BOUNDS = (1e-2, 1e2)
XATOL = 1e-6
OPTIMIZER = {'method': 'scipy.optimize.minimize_scalar(method="bounded") over log T',
             'bounds_T': list(BOUNDS), 'xatol_log_T': XATOL}


def scaled_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
  """Mean over examples of −log softmax(z_i / T)_{y_i}, float64. `logits` `[n, classes]` (all
  finite), `labels` `[n]` ints."""
  logits = np.asarray(logits, np.float64) / float(temperature)
  log_probs = special.log_softmax(logits, axis=-1)
  return float(-np.mean(log_probs[np.arange(len(logits)), np.asarray(labels, np.int64)]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
  """T* = argmin_T mean NLL(softmax(z / T), y) over the finite rows of `logits` `[n, classes]`.

  The NLL is convex in 1/T (a log-sum-exp of functions linear in 1/T, minus a linear term), so
  it is unimodal in log T and a bounded 1-D search finds its minimum: `minimize_scalar` with
  `method='bounded'` on log T in [log 0.01, log 100], `xatol` 1e-6 (T* to a relative 1e-6).

  A fit set in which every example's label has the strictly largest logit does not identify T:
  its NLL falls all the way as T -> 0 (d NLL / d(1/T) = mean(E_p[z] − z_y) < 0 everywhere), so
  an unbounded fit runs off to T = 0 and the examples it then scores are charged for each error
  at near-certain confidence. Such a fit set gets T = 1 (no scaling), flagged `separable`.

  Returns:
    {'t': T*, 'nll': the mean NLL at T*, 'nll_t1': at T = 1, 'n': examples fitted on,
     'iterations', 'at_bound': 1.0 when T* is within 1e-3 (in log T) of a bound,
     'separable': 1.0 for a fit set without an error (then T* = 1)}.
  Raises:
    ValueError: no example with finite logits.
  """
  logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
  finite = np.all(np.isfinite(logits), axis=-1)
  logits, labels = logits[finite], labels[finite]
  if not len(logits):
    raise ValueError('no example with finite logits to fit a temperature on')
  rows = np.arange(len(labels))
  label_logits = logits[rows, labels]
  others = np.where(np.arange(logits.shape[1]) == labels[:, None], -np.inf, logits)
  nll_t1 = scaled_nll(logits, labels, 1.0)
  out = {'nll_t1': nll_t1, 'n': int(len(logits))}
  if np.all(label_logits > others.max(axis=-1)):
    return {'t': 1.0, 'nll': nll_t1, **out, 'iterations': 0, 'at_bound': 0.0, 'separable': 1.0}
  low, high = np.log(BOUNDS)
  result = optimize.minimize_scalar(lambda log_t: scaled_nll(logits, labels, np.exp(log_t)),
                                    bounds=(low, high), method='bounded',
                                    options={'xatol': XATOL})
  at_bound = min(result.x - low, high - result.x) < 1e-3
  return {'t': float(np.exp(result.x)), 'nll': float(result.fun), **out,
          'iterations': int(result.nfev), 'at_bound': float(at_bound), 'separable': 0.0}


def cross_fit_folds(index: np.ndarray) -> np.ndarray:
  """The fold (0 or 1) of each example for two-fold cross-fitting: its source index mod 2.

  Deterministic (no seed), disjoint, the same whatever the batch size or device count, and
  balanced within any class-sorted run of examples."""
  return np.asarray(index, np.int64) % 2


def cross_fit(logits: np.ndarray, labels: np.ndarray,
              index: np.ndarray) -> Tuple[np.ndarray, Dict[str, Dict[str, float]]]:
  """Two-fold cross-fitting: T fitted on the even-index examples scores the odd ones, and the
  other way round.

  Returns:
    (per-example temperatures `[n]`: each example's T is the one fitted on the other fold,
     {'even': fit on fold 0, 'odd': fit on fold 1} as `fit_temperature` returns them).
  Raises:
    ValueError: a fold has no example with finite logits.
  """
  folds = cross_fit_folds(index)
  fits = {}
  for name, fold in (('even', 0), ('odd', 1)):
    try:
      fits[name] = fit_temperature(logits[folds == fold], labels[folds == fold])
    except ValueError as e:
      raise ValueError(f'cross-fitting: the {name}-index half: {e}') from None
  temperatures = np.where(folds == 0, fits['odd']['t'], fits['even']['t'])
  return temperatures, fits


def score(logits: np.ndarray, labels: np.ndarray, temperatures: np.ndarray) -> Dict[str, object]:
  """10-bin ECE (a fraction) and its bin table, mean NLL and top-1 (a fraction) of
  softmax(z_i / T_i), each example i with its own T_i, in NumPy (float64; the confidences are
  binned in float32 as the calibration evaluator bins them, docs/evaluation.md §2).

  The rules of `metrics/classification.py`: prediction = first maximal logit; an example with a
  NaN or ±inf logit is wrong, with confidence 1.0 and NLL +inf (so the mean NLL is +inf).

  Args:
    logits: `[n, classes]`; labels: `[n]` ints; temperatures: `[n]` > 0.
  Returns:
    {'ece', 'table' (`ece_from_bin_stats`' non-empty bins), 'nll', 'top1', 'confidence' (the
     mean max-softmax, a fraction)}.
  """
  logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
  finite = np.all(np.isfinite(logits), axis=-1)
  scaled = np.where(finite[:, None], logits, 0.0) / np.asarray(temperatures, np.float64)[:, None]
  log_probs = special.log_softmax(scaled, axis=-1)
  rows = np.arange(len(labels))
  confidences = np.where(finite, np.exp(log_probs.max(axis=-1)), 1.0).astype(np.float32)
  correct = ((np.argmax(scaled, axis=-1) == labels) & finite).astype(np.float64)
  edges = np.arange(1, 11, dtype=np.float32) / np.float32(10)
  index = np.clip(np.searchsorted(edges, confidences, side='left'), 0, 9)
  ece, table = classification.ece_from_bin_stats({
      'count': np.bincount(index, minlength=10),
      'correct_sum': np.bincount(index, weights=correct, minlength=10),
      'confidence_sum': np.bincount(index, weights=confidences.astype(np.float64), minlength=10)})
  nll = np.where(finite, -log_probs[rows, labels], np.inf)
  return {'ece': ece, 'table': table, 'nll': float(np.mean(nll)), 'top1': float(np.mean(correct)),
          'confidence': float(np.mean(confidences, dtype=np.float64))}
