"""Final-epoch metrics of a classifier from its test logits, in NumPy, for both implementations.

The formula of `sdd_jax.metrics.classification` / the `accuracy` evaluator (docs/evaluation.md): top-1 with the
first-maximum rule, NLL, 10-bin ECE on the max softmax (`metrics.expected_calibration_error`),
mean confidence; plus the largest |logit|, which tells a blow-up. Percent where the evaluator
gives percent.
"""
from typing import Dict

import numpy as np

from sdd_jax.metrics import classification as metrics

METRICS = ('top1', 'nll', 'ece', 'confidence', 'max_abs_logit')


def log_softmax(logits: np.ndarray) -> np.ndarray:
  """float64 log-softmax over the last axis, stable for logits of any size."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def logit_metrics(logits: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
  """logits [N, classes], labels int [N] -> {'top1', 'nll', 'ece', 'confidence' (percent but
  nll), 'max_abs_logit'}."""
  labels = np.asarray(labels, np.int64)
  log_probs = log_softmax(logits)
  confidences = np.exp(log_probs.max(axis=-1))
  correct = (np.argmax(logits, axis=-1) == labels).astype(np.float64)
  return {
      'top1': 100 * float(correct.mean()),
      'nll': float(-log_probs[np.arange(len(labels)), labels].mean()),
      'ece': 100 * metrics.expected_calibration_error(confidences, correct, num_bins=10),
      'confidence': 100 * float(confidences.mean()),
      'max_abs_logit': float(np.abs(logits).max()),
  }


def summarize(values) -> Dict[str, float]:
  """Mean, std (ddof 1), standard error of the mean and n of per-seed values."""
  values = np.asarray(values, np.float64)
  n = len(values)
  std = float(values.std(ddof=1)) if n > 1 else float('nan')
  return {'mean': float(values.mean()), 'std': std, 'se': std / np.sqrt(n), 'n': n}
