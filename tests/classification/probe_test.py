"""Tests for sdd_jax.classification.probe against float64 NumPy written from the paper's formulas, and by hand."""
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import losses
from sdd_jax.classification import probe
from sdd_jax.train import state as state_lib
from tests.methods import tiny_net

BATCH, DIM, CLASSES = 4, 6, 5


def linear_apply(params, x):
  return x @ params['kernel'] + params['bias']


# ---------------------------------------------------------------- independent NumPy references
def np_softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def np_prob_gradient_l1(x, kernel, bias, temperature):
  """‖∇_(W,b) p_i‖₁ per (example, class), from the full Jacobian written out.

  p = softmax(z / T), z = x W + b: ∂p_i/∂z_c = p_i (δ_ic − p_c) / T, ∂z_c/∂W_dc = x_d,
  ∂z_c/∂b_c = 1, so ∂p_i/∂W_dc = x_d ∂p_i/∂z_c and ∂p_i/∂b_c = ∂p_i/∂z_c.
  """
  x = np.asarray(x, np.float64)
  p = np_softmax(np_logits(x, kernel, bias) / temperature)
  out = np.zeros(p.shape)
  for b in range(p.shape[0]):
    for i in range(p.shape[1]):
      dz = p[b, i] * ((np.arange(p.shape[1]) == i) - p[b]) / temperature   # [C]
      d_kernel = np.outer(x[b], dz)                                        # [D, C]
      out[b, i] = np.abs(d_kernel).sum() + np.abs(dz).sum()
  return out


def np_logits(x, kernel, bias):
  return np.asarray(x, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)


def np_assumption_statistics(z_u, z_v, g_u, g_v, temperature):
  """Table 8 by a loop over (example, class) pairs, with the paper's WLOG p_i ≥ q_i."""
  p, q = np_softmax(np.asarray(z_u) / temperature), np_softmax(np.asarray(z_v) / temperature)
  holds, abs_r, r1 = [], [], []
  for b in range(p.shape[0]):
    for i in range(p.shape[1]):
      holds.append((p[b, i] / q[b, i] - 1) * (g_u[b, i] / g_v[b, i] - 1) > 0)
      big, small = (g_u[b, i], g_v[b, i]) if p[b, i] >= q[b, i] else (g_v[b, i], g_u[b, i])
      rho = big / small
      abs_r.append(abs(math.log(p[b, i] / q[b, i])))
      r1.append(abs(math.log(rho) + math.log(math.log(rho + math.e - 1))))
  return {'assumption1_fraction': np.mean(holds), 'mean_abs_r': np.mean(abs_r),
          'r1': np.mean(r1)}


def np_kl_gradients(x_u, x_v, kernel, bias, temperature):
  """Gradients w.r.t. (W, b) of the batch-mean Eq. 6 (forward) and Eq. 7 (reverse) terms.

  With p = softmax(z_u / T), q = softmax(z_v / T):
    d KL(a ‖ softmax(z/T)) / dz  = (softmax(z/T) − a) / T             (a constant)
    d KL(softmax(z/T) ‖ b) / dz  = s ⊙ (log s − log b − KL(s ‖ b)) / T (b constant, s = softmax)
  forward = KL(sg p‖q) + KL(sg q‖p): g_u = (p − q)/T, g_v = (q − p)/T;
  reverse = KL(p‖sg q) + KL(q‖sg p): g_u = p(log p − log q − KL(p‖q))/T, g_v likewise.
  Then dW = (x_uᵀ g_u + x_vᵀ g_v) / B and db = Σ_b (g_u + g_v) / B.
  """
  x_u, x_v = np.asarray(x_u, np.float64), np.asarray(x_v, np.float64)
  p = np_softmax(np_logits(x_u, kernel, bias) / temperature)
  q = np_softmax(np_logits(x_v, kernel, bias) / temperature)
  kl_pq = (p * np.log(p / q)).sum(-1, keepdims=True)
  kl_qp = (q * np.log(q / p)).sum(-1, keepdims=True)
  grads = {'forward': ((p - q) / temperature, (q - p) / temperature),
           'reverse': (p * (np.log(p / q) - kl_pq) / temperature,
                       q * (np.log(q / p) - kl_qp) / temperature)}
  n = x_u.shape[0]
  return {d: {'kernel': (x_u.T @ g_u + x_v.T @ g_v) / n, 'bias': (g_u + g_v).sum(0) / n}
          for d, (g_u, g_v) in grads.items()}


def np_gradient_statistics(g_fw, g_rv):
  fw = np.concatenate([g_fw['bias'].ravel(), g_fw['kernel'].ravel()])
  rv = np.concatenate([g_rv['bias'].ravel(), g_rv['kernel'].ravel()])
  return {'grad_cosine': fw @ rv / np.linalg.norm(fw) / np.linalg.norm(rv),
          'grad_l1_forward': np.abs(fw).sum(), 'grad_l1_reverse': np.abs(rv).sum()}


def np_head_probe(features, masks, kernel, bias, temperature):
  f, m = np.asarray(features, np.float64), np.asarray(masks, np.float64)
  x_u, x_v = m[0] * f, m[1] * f
  stats = np_assumption_statistics(
      np_logits(x_u, kernel, bias), np_logits(x_v, kernel, bias),
      np_prob_gradient_l1(x_u, kernel, bias, temperature),
      np_prob_gradient_l1(x_v, kernel, bias, temperature), temperature)
  g = np_kl_gradients(x_u, x_v, kernel, bias, temperature)
  stats.update(np_gradient_statistics(g['forward'], g['reverse']))
  return stats


def random_case(seed=0, rate=0.5):
  rng = np.random.default_rng(seed)
  params = {'kernel': jnp.asarray(rng.normal(size=(DIM, CLASSES)), jnp.float32),
            'bias': jnp.asarray(rng.normal(size=CLASSES) * 0.3, jnp.float32)}
  features = jnp.asarray(np.abs(rng.normal(size=(BATCH, DIM))), jnp.float32)
  masks = losses.dropout_masks(jax.random.key(seed), features.shape, rate, 2)
  return params, features, masks


@functools.partial(jax.jit, static_argnames='temperature')
def jit_head_probe(params, features, masks, temperature):
  return probe.head_probe(linear_apply, params, features, masks, temperature=temperature)


# ---------------------------------------------------------------- tests
def test_hand_worked_two_class_case():
  # One example, D = 1, C = 2, T = 1, W = [[1, 0]], b = 0, f = 1, masks u = 2 (kept, scaled by
  # 1/(1-0.5)), v = 0 (dropped). x_u = 2, x_v = 0, z_u = (2, 0), z_v = (0, 0):
  #   p = (σ(2), 1 − σ(2)) = (0.8808, 0.1192), q = (0.5, 0.5).
  # ‖∇p_i‖₁ = 2 p_i (1 − p_i)(|x_u| + 1) = 6·0.8808·0.1192 = 0.6300 for both classes;
  # ‖∇q_i‖₁ = 2·0.25·(0 + 1) = 0.5.
  # Assumption 1: class 0: p > q and 0.63 > 0.5, holds; class 1: p < q but 0.63 > 0.5, fails -> 1/2.
  # |r| = |log(0.8808/0.5)| = 0.5662, |log(0.1192/0.5)| = 1.4338; mean = (log p0 − log p1)/2 = 1.
  # r1: class 0 (p larger) ρ = 0.63/0.5 = 1.2599: |0.2311 + log log 2.9782| = |0.2311 + 0.0874|
  #     = 0.3184; class 1 (q larger) ρ = 0.5/0.63 = 0.7937: |−0.2311 + log log 2.5120|
  #     = |−0.2311 − 0.0822| = 0.3133; mean 0.3159.
  # Forward: g_u = p − q = (0.3808, −0.3808), g_v = −g_u; dW = 2·g_u + 0·g_v = (0.7616, −0.7616),
  #   db = g_u + g_v = 0; L1 = 1.5232 (= 2 tanh 1).
  # Reverse: KL(p‖q) = 0.3278, g_u = p(log p/q − 0.3278) = (0.2100, −0.2100);
  #   KL(q‖p) = 0.4338, g_v = q(log q/p − 0.4338) = (−0.5, 0.5);
  #   dW = 2·g_u = (0.4200, −0.4200), db = g_u + g_v = (−0.2900, 0.2900); L1 = 1.4200.
  # cos = (2·0.7616·0.4200) / (1.0771 · 0.7218) = 0.8229.
  params = {'kernel': jnp.array([[1.0, 0.0]]), 'bias': jnp.zeros(2)}
  stats = jit_head_probe(params, jnp.ones((1, 1)), jnp.array([[[2.0]], [[0.0]]]), 1.0)
  expected = {'assumption1_fraction': 0.5, 'mean_abs_r': 1.0, 'r1': 0.3159,
              'grad_cosine': 0.8229, 'grad_l1_forward': 1.5232, 'grad_l1_reverse': 1.4200}
  assert set(stats) == set(expected)
  for k, v in expected.items():
    np.testing.assert_allclose(stats[k], v, atol=2e-4, err_msg=k)


@pytest.mark.parametrize('seed,temperature', [(0, 3.0), (1, 1.0), (2, 4.0)])
def test_head_probe_matches_numpy(seed, temperature):
  params, features, masks = random_case(seed)
  stats = jit_head_probe(params, features, masks, temperature)
  expected = np_head_probe(features, masks, params['kernel'], params['bias'], temperature)
  assert set(stats) == set(expected)
  for k, v in expected.items():
    np.testing.assert_allclose(stats[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_prob_gradient_l1_matches_jacobian_and_closed_form():
  params, features, masks = random_case(3)
  x = masks[0] * features
  got = jax.jit(probe.prob_gradient_l1, static_argnums=(0, 3))(linear_apply, params, x, 3.0)
  expected = np_prob_gradient_l1(x, params['kernel'], params['bias'], 3.0)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Closed form for a linear head: ‖e_i − p‖₁ = 2 (1 − p_i), so (2/T) p_i (1 − p_i)(‖x‖₁ + 1).
  p = np_softmax(np_logits(x, params['kernel'], params['bias']) / 3.0)
  closed = 2 / 3.0 * p * (1 - p) * (np.abs(np.asarray(x)).sum(-1, keepdims=True) + 1)
  np.testing.assert_allclose(got, closed, rtol=1e-5)


def test_kl_gradients_match_numpy_per_leaf():
  params, features, masks = random_case(4)
  x_u, x_v = masks[0] * features, masks[1] * features
  g_fw, g_rv = jax.jit(probe.kl_gradients, static_argnums=(0, 4))(
      linear_apply, params, x_u, x_v, 3.0)
  expected = np_kl_gradients(x_u, x_v, params['kernel'], params['bias'], 3.0)
  for name, got in (('forward', g_fw), ('reverse', g_rv)):
    for leaf in ('kernel', 'bias'):
      np.testing.assert_allclose(got[leaf], expected[name][leaf], rtol=1e-4, atol=1e-7,
                                 err_msg=f'{name}/{leaf}')


def test_assumption_statistics_orientation_ties_and_underflow():
  # Example 0, class 0: p > q, G^p > G^q: holds, ρ = 2. Class 1: p < q, G^p > G^q: fails,
  # oriented ρ = G^q / G^p = 0.5. Example 1: identical logits (r = 0, a tie: fails) and one
  # pair with a zero gradient norm, which is left out of every mean.
  z_u = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  z_v = jnp.array([[0.0, 0.0], [0.0, 0.0]])
  g_u = jnp.array([[2.0, 2.0], [1.0, 0.0]])
  g_v = jnp.array([[1.0, 1.0], [1.0, 1.0]])
  stats = jax.jit(probe.assumption_statistics, static_argnums=4)(z_u, z_v, g_u, g_v, 1.0)
  p = np_softmax(np.array([1.0, 0.0]))
  r = np.log(p / 0.5)
  r1 = lambda rho: abs(math.log(rho) + math.log(math.log(rho + math.e - 1)))
  np.testing.assert_allclose(stats['assumption1_fraction'], 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(stats['mean_abs_r'], (abs(r[0]) + abs(r[1]) + 0) / 3, rtol=1e-5)
  np.testing.assert_allclose(stats['r1'], (r1(2.0) + r1(0.5) + r1(1.0)) / 3, rtol=1e-5)


def test_gradient_statistics_parallel_and_orthogonal():
  a = {'bias': jnp.array([1.0, -2.0]), 'kernel': jnp.array([[3.0]])}
  stats = probe.gradient_statistics(a, jax.tree_util.tree_map(lambda x: 2 * x, a))
  np.testing.assert_allclose(stats['grad_cosine'], 1.0, rtol=1e-6)
  np.testing.assert_allclose(stats['grad_l1_forward'], 6.0)
  np.testing.assert_allclose(stats['grad_l1_reverse'], 12.0)
  b = {'bias': jnp.array([2.0, 1.0]), 'kernel': jnp.array([[0.0]])}
  np.testing.assert_allclose(probe.gradient_statistics(a, b)['grad_cosine'], 0.0, atol=1e-7)


@pytest.mark.parametrize('head_hidden', [(), (8,)])
def test_probe_metrics_on_a_model(head_hidden):
  model = tiny_net.TinyNet(num_classes=CLASSES, head_hidden=head_hidden)
  images = jax.random.normal(jax.random.key(0), (BATCH, 8, 8, 3))
  variables = jax.jit(functools.partial(model.init, train=False))(state_lib.init_key(1), images)
  key = jax.random.key(7)
  chex.clear_trace_counter()
  fn = jax.jit(chex.assert_max_traces(probe.probe_metrics, n=1),
               static_argnames=('model', 'rate', 'temperature'))
  stats = fn(model, variables, images, key, rate=0.5, temperature=3.0)
  stats_again = fn(model, variables, images + 1.0, jax.random.key(8), rate=0.5, temperature=3.0)
  assert set(stats) == {f'probe/{k}' for k in ('assumption1_fraction', 'mean_abs_r', 'r1',
                                               'grad_cosine', 'grad_l1_forward',
                                               'grad_l1_reverse')}
  for v in list(stats.values()) + list(stats_again.values()):
    assert v.shape == () and np.isfinite(v)
  if head_hidden:
    return
  # Default single-Dense head: the eval-mode features, the masks from `key`, θ = output layer.
  features = jax.jit(functools.partial(model.apply, train=False, method=model.features))(
      variables, images)
  masks = losses.dropout_masks(key, features.shape, 0.5, 2)
  out = variables['params']['classifier']['output']
  expected = np_head_probe(features, masks, out['kernel'], out['bias'], 3.0)
  for k, v in expected.items():
    np.testing.assert_allclose(stats[f'probe/{k}'], v, rtol=1e-4, atol=1e-6, err_msg=k)
