"""Token losses against NumPy: label smoothing (fairseq's formula), PAD positions ignored, PS-KD
targets, and PS-KD with alpha = 0 equal to label smoothing bit for bit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax.translation import losses
from sdd_jax.translation import tokens


def _example(seed=0, batch=3, length=5, vocab=7):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(batch, length, vocab)).astype(np.float32) * 3
  labels = rng.integers(4, vocab, size=(batch, length)).astype(np.int32)
  labels[0, 3:] = tokens.PAD  # padded tails
  labels[2, 1:] = tokens.PAD
  teacher = rng.dirichlet(np.ones(vocab), size=(batch, length)).astype(np.float32)
  return logits, labels, teacher


def _np_log_softmax(x):
  x = x.astype(np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_soft_ce(logits, targets, labels):
  """sum over non-PAD positions of -sum_v q_v log p_v, and the non-PAD count."""
  mask = labels != tokens.PAD
  per_token = -(targets * _np_log_softmax(logits)).sum(-1)
  return per_token[mask].sum(), mask.sum()


@pytest.mark.parametrize('epsilon', [0.0, 0.1, 0.3])
def test_label_smoothing_is_the_soft_target_ce_with_eps_over_the_whole_vocabulary(epsilon):
  logits, labels, _ = _example()
  vocab = logits.shape[-1]
  targets = (1 - epsilon) * np.eye(vocab)[labels] + epsilon / vocab
  total, count = _np_soft_ce(logits, targets, labels)
  per_token = jax.jit(losses.label_smoothed_loss, static_argnums=2)(logits, labels, epsilon)
  np.testing.assert_allclose(np.sum(per_token), total, rtol=1e-5)
  np.testing.assert_allclose(losses.token_mean(per_token, labels), total / count, rtol=1e-5)
  assert np.all(np.asarray(per_token)[labels == tokens.PAD] == 0)


def test_pad_positions_change_neither_the_loss_nor_get_a_gradient():
  logits, labels, teacher = _example()
  pad = labels == tokens.PAD

  def mean_loss(x):
    return losses.token_mean(losses.pskd_loss(x, labels, teacher, 0.4, 0.1), labels)

  noisy = np.where(pad[..., None], logits + 100 * np.random.default_rng(1).normal(
      size=logits.shape).astype(np.float32), logits)
  assert float(mean_loss(logits)) == float(mean_loss(noisy))
  grads = np.asarray(jax.grad(mean_loss)(jnp.asarray(logits)))
  assert np.all(grads[pad] == 0) and np.all(np.abs(grads[~pad]).sum(-1) > 0)


@pytest.mark.parametrize('alpha,epsilon', [(0.0, 0.1), (0.5, 0.0), (0.5, 0.1), (1.0, 0.1)])
def test_pskd_targets_and_loss_against_numpy(alpha, epsilon):
  logits, labels, teacher = _example(seed=2)
  vocab = logits.shape[-1]
  expected = (1 - alpha) * ((1 - epsilon) * np.eye(vocab)[labels] + epsilon / vocab) \
      + alpha * teacher
  targets = losses.pskd_targets(labels, teacher, alpha, epsilon)
  np.testing.assert_allclose(targets, expected, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(np.asarray(targets).sum(-1), 1, rtol=1e-6)
  total, count = _np_soft_ce(logits, expected, labels)
  per_token = jax.jit(losses.pskd_loss, static_argnums=4)(logits, labels, teacher, alpha, epsilon)
  np.testing.assert_allclose(np.sum(per_token), total, rtol=1e-5)
  np.testing.assert_allclose(losses.token_mean(per_token, labels), total / count, rtol=1e-5)


def test_pskd_with_alpha_zero_is_label_smoothing_bitwise_value_and_gradient():
  logits, labels, teacher = _example(seed=3)
  alpha = jnp.float32(0.0)  # traced, as in the train step

  @jax.jit
  def both(x, alpha):
    ls = lambda y: losses.token_mean(losses.label_smoothed_loss(y, labels, 0.1), labels)
    pskd = lambda y: losses.token_mean(losses.pskd_loss(y, labels, teacher, alpha, 0.1), labels)
    return jax.value_and_grad(ls)(x), jax.value_and_grad(pskd)(x)

  (ls_value, ls_grad), (pskd_value, pskd_grad) = both(jnp.asarray(logits), alpha)
  assert np.array_equal(ls_value, pskd_value)
  assert np.array_equal(ls_grad, pskd_grad)


def test_token_mean_of_an_all_pad_batch_is_zero_not_nan():
  labels = np.zeros((2, 3), np.int32)
  assert float(losses.token_mean(jnp.ones((2, 3)) * losses.token_mask(labels), labels)) == 0.0
