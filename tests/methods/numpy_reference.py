"""NumPy references shared by the method tests: float64 softmax, log-softmax, KL, CE."""
import numpy as np


def log_softmax(z, temperature=1.0):
  z = np.asarray(z, np.float64) / temperature
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(z, temperature=1.0):
  return np.exp(log_softmax(z, temperature))


def kl(target_logits, logits, temperature):
  """KL(p^T(target) || p^T(logits)) per example."""
  log_p, log_q = log_softmax(target_logits, temperature), log_softmax(logits, temperature)
  return np.sum(np.exp(log_p) * (log_p - log_q), -1)


def cross_entropy(logits, targets):
  """-sum targets * log softmax(logits) per example; `targets` a distribution or int labels."""
  targets = np.asarray(targets)
  if targets.ndim == 1:
    targets = np.eye(np.shape(logits)[-1])[targets]
  return -np.sum(targets * log_softmax(logits), -1)


def logits(rng, batch=4, classes=5, scale=2.0):
  return (scale * rng.normal(size=(batch, classes))).astype(np.float32)
