"""Tests for sdd_jax.losses against independent float64 NumPy and hand-worked numbers."""
import copy
import functools
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from sdd_jax import losses

BATCH, CLASSES, DIM = 4, 5, 6


# ---------------------------------------------------------------- independent NumPy references
def np_log_softmax(x):
  x = np.asarray(x, np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_kl(target_logits, logits, temperature=1.0):
  """KL(p_target ‖ p) per row, float64."""
  log_pt = np_log_softmax(np.asarray(target_logits, np.float64) / temperature)
  log_p = np_log_softmax(np.asarray(logits, np.float64) / temperature)
  return (np.exp(log_pt) * (log_pt - log_p)).sum(-1)


def np_symmetric_kl(u, v, temperature):
  return np_kl(u, v, temperature) + np_kl(v, u, temperature)


def np_grad_kl_wrt_logits(target_logits, logits, temperature):
  """d KL(p_t‖p) / d logits = (p − p_t) / T."""
  p_t = np.exp(np_log_softmax(np.asarray(target_logits, np.float64) / temperature))
  p = np.exp(np_log_softmax(np.asarray(logits, np.float64) / temperature))
  return (p - p_t) / temperature


def np_grad_kl_wrt_target(target_logits, logits, temperature):
  """d KL(p_t‖p) / d target_logits = p_t ⊙ (log p_t − log p − KL) / T."""
  log_pt = np_log_softmax(np.asarray(target_logits, np.float64) / temperature)
  log_p = np_log_softmax(np.asarray(logits, np.float64) / temperature)
  kl = np_kl(target_logits, logits, temperature)[:, None]
  return np.exp(log_pt) * (log_pt - log_p - kl) / temperature


def np_masks(key, shape, rate, num_samples):
  """Masks drawn directly with split + bernoulli, independently of losses.dropout_masks."""
  keys = jax.random.split(key, num_samples)
  return [np.asarray(jax.random.bernoulli(k, 1.0 - rate, shape), np.float64) / (1.0 - rate)
          for k in keys]


def _pool(x):
  return x if x.ndim == 2 else x.mean(axis=(1, 2))


def np_sd_dropout(params, features, masks, temperature):
  w, b = (np.asarray(params[n], np.float64) for n in ('w', 'b'))
  f = np.asarray(features, np.float64)
  z = [_pool(m * f) @ w + b for m in masks]
  pairs = [(i, j) for i in range(len(z)) for j in range(i + 1, len(z))]
  return sum(np_symmetric_kl(z[i], z[j], temperature) for i, j in pairs) / len(pairs)


# ---------------------------------------------------------------- jitted entry points
jit_ce = jax.jit(losses.cross_entropy)
jit_soft_ce = jax.jit(losses.soft_cross_entropy)
jit_kl = jax.jit(losses.kl_divergence, static_argnames='temperature')
jit_sym = jax.jit(losses.symmetric_kl, static_argnames=('temperature', 'direction'))
jit_masks = jax.jit(losses.dropout_masks, static_argnames=('shape', 'rate', 'num_samples'))


def linear_head(params):
  """Linear head on pooled features (a [B, H, W, C] map is averaged over H, W first)."""
  return lambda x: _pool(x) @ params['w'] + params['b']


@functools.partial(jax.jit, static_argnames=('rate', 'temperature', 'direction', 'num_samples'))
def sd_loss(params, features, key, *, rate=0.5, temperature=3.0, direction='both',
            num_samples=2):
  return losses.sd_dropout(linear_head(params), features, key, rate=rate,
                           temperature=temperature, direction=direction,
                           num_samples=num_samples)


@functools.partial(jax.jit, static_argnames='num_samples')
def sd_loss_all_directions(params, features, key, num_samples=2):
  """{direction: sd_dropout term [batch]} for the three directions, in one compilation."""
  return {d: losses.sd_dropout(linear_head(params), features, key, rate=0.5, temperature=3.0,
                               direction=d, num_samples=num_samples)
          for d in losses.DIRECTIONS}


@jax.jit
def sd_head_grads_all_directions(params, features, key):
  """{direction: grad of the batch-mean term wrt the head params}, in one compilation."""
  return {d: jax.grad(lambda p: jnp.mean(losses.sd_dropout(
              linear_head(p), features, key, rate=0.5, temperature=3.0, direction=d)))(params)
          for d in losses.DIRECTIONS}


def _logits(seed, shape=(BATCH, CLASSES), scale=2.0):
  return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _head_params(seed=0, dim=DIM):
  rng = np.random.default_rng(seed)
  return {'w': jnp.asarray(rng.normal(size=(dim, CLASSES)), jnp.float32),
          'b': jnp.asarray(rng.normal(size=(CLASSES,)), jnp.float32)}


# ---------------------------------------------------------------- cross-entropy
def test_cross_entropy_hand_worked():
  # logits [0, ln 3] -> p = [1/4, 3/4]; label 0: ln 4 = 1.386294, label 1: ln(4/3) = 0.287682.
  logits = jnp.array([[0.0, math.log(3.0)]] * 2)
  np.testing.assert_allclose(jit_ce(logits, jnp.array([0, 1])), [1.386294, 0.287682],
                             rtol=1e-5)


def test_cross_entropy_matches_numpy():
  logits, labels = _logits(0), np.array([0, 4, 2, 2])
  expected = -np_log_softmax(logits)[np.arange(BATCH), labels]
  out = jit_ce(logits, labels)
  chex.assert_shape(out, (BATCH,))
  np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_cross_entropy_upcasts_bfloat16():
  logits = jnp.asarray(_logits(0), jnp.bfloat16)
  out = jit_ce(logits, jnp.array([0, 1, 2, 3]))
  assert out.dtype == jnp.float32
  expected = -np_log_softmax(np.asarray(logits, np.float64))[np.arange(BATCH), [0, 1, 2, 3]]
  np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_cross_entropy_takes_one_hot_and_soft_float_targets_as_optax_does():
  """Float [batch, classes] targets: the soft cross-entropy (optax's softmax_cross_entropy);
  one-hot rows give the integer labels' value."""
  logits, labels = _logits(3), np.array([2, 0, 4, 1])
  hard = -np_log_softmax(logits)[np.arange(BATCH), labels]
  np.testing.assert_allclose(jit_ce(logits, np.eye(CLASSES, dtype=np.float32)[labels]), hard,
                             rtol=1e-5)
  targets = 0.9 * np.eye(CLASSES)[labels] + 0.1 / CLASSES  # label smoothing 0.1
  out = jit_ce(jnp.asarray(logits, jnp.bfloat16), targets.astype(np.float32))
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(
      out, -(targets * np_log_softmax(np.asarray(jnp.asarray(logits, jnp.bfloat16),
                                                 np.float64))).sum(-1), rtol=1e-5)


@pytest.mark.parametrize('labels', [np.array([0.0, 1.0, 2.0, 3.0]),  # float class indices
                                    np.eye(CLASSES, dtype=np.int32)[[0, 1, 2, 3]],  # int one-hot
                                    np.zeros((BATCH, CLASSES + 1), np.float32),  # wrong classes
                                    np.array([0, 1])])  # wrong batch
def test_cross_entropy_refuses_other_labels_in_one_line(labels):
  with pytest.raises(ValueError, match=r'cross_entropy: labels must be integer class indices of '
                                       r'shape \(4,\) or float targets of shape \(4, 5\), got '):
    jit_ce(_logits(0), labels)


def test_soft_cross_entropy_hand_worked_and_numpy():
  # targets [1/2, 1/2], logits [0, ln 3]: -(ln(1/4) + ln(3/4)) / 2 = 0.836988.
  out = jit_soft_ce(jnp.array([[0.0, math.log(3.0)]]), jnp.array([[0.5, 0.5]]))
  np.testing.assert_allclose(out, [0.836988], rtol=1e-5)
  logits = _logits(1)
  targets = np.exp(np_log_softmax(_logits(2)))
  np.testing.assert_allclose(jit_soft_ce(logits, targets.astype(np.float32)),
                             -(targets * np_log_softmax(logits)).sum(-1), rtol=1e-5)
  # One-hot targets give the hard-label cross-entropy.
  labels = np.array([1, 0, 3, 4])
  np.testing.assert_allclose(jit_soft_ce(logits, np.eye(CLASSES, dtype=np.float32)[labels]),
                             -np_log_softmax(logits)[np.arange(BATCH), labels], rtol=1e-5)


# ---------------------------------------------------------------- KL
def test_kl_hand_worked():
  # p = softmax([0, 0]) = [1/2, 1/2], q = softmax([0, ln 3]) = [1/4, 3/4].
  # KL(p‖q) = 1/2 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3) = 0.143841.
  # KL(q‖p) = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812.
  # KL(p‖q) + KL(q‖p) = Σ (p − q)(log p − log q) = 1/4 ln 2 + 1/4 ln(3/2) = 1/4 ln 3 = 0.274653.
  p_logits, q_logits = jnp.array([[0.0, 0.0]]), jnp.array([[0.0, math.log(3.0)]])
  np.testing.assert_allclose(jit_kl(p_logits, q_logits), [0.143841], rtol=1e-5)
  np.testing.assert_allclose(jit_kl(q_logits, p_logits), [0.130812], rtol=1e-5)
  # At T = 2, logits [0, 2 ln 3] give the same q.
  np.testing.assert_allclose(jit_kl(p_logits, 2 * q_logits, temperature=2.0), [0.143841],
                             rtol=1e-5)
  for direction in losses.DIRECTIONS:
    np.testing.assert_allclose(jit_sym(p_logits, q_logits, temperature=1.0,
                                       direction=direction), [0.274653], rtol=1e-5)


@pytest.mark.parametrize('temperature', [1.0, 3.0, 0.5])
def test_kl_matches_numpy(temperature):
  t, l = _logits(3), _logits(4)
  out = jit_kl(t, l, temperature=temperature)
  chex.assert_shape(out, (BATCH,))
  np.testing.assert_allclose(out, np_kl(t, l, temperature), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(jit_kl(t, t, temperature=temperature), np.zeros(BATCH), atol=1e-6)


def test_kl_is_stable_for_extreme_logits():
  # p_t = [1, 0], log p = [-2000, 0]: KL = 1 · (0 − (−2000)) + 0 · (...) = 2000.
  t, l = jnp.array([[1000.0, -1000.0]]), jnp.array([[-1000.0, 1000.0]])
  np.testing.assert_allclose(jit_kl(t, l), [2000.0], rtol=1e-6)
  grads = jax.jit(jax.grad(lambda a, b: losses.kl_divergence(a, b).sum(), (0, 1)))(t, l)
  assert all(np.isfinite(g).all() for g in grads)


def test_kl_gradients_flow_through_both_arguments():
  t, l, temperature = _logits(5), _logits(6), 3.0
  grad_fn = jax.jit(jax.grad(lambda a, b: losses.kl_divergence(a, b, temperature).sum(),
                             argnums=(0, 1)))
  g_t, g_l = grad_fn(t, l)
  np.testing.assert_allclose(g_t, np_grad_kl_wrt_target(t, l, temperature), atol=1e-6)
  np.testing.assert_allclose(g_l, np_grad_kl_wrt_logits(t, l, temperature), atol=1e-6)


@pytest.mark.parametrize('direction', losses.DIRECTIONS)
def test_symmetric_kl_values_match_numpy(direction):
  u, v = _logits(7), _logits(8)
  np.testing.assert_allclose(jit_sym(u, v, temperature=3.0, direction=direction),
                             np_symmetric_kl(u, v, 3.0), rtol=1e-5)


def _expected_symmetric_grads(u, v, temperature, direction):
  """Closed-form gradients of Σ_batch symmetric_kl wrt (u, v).

  forward  = KL(sg p_u‖p_v) + KL(sg p_v‖p_u): u only enters as the 2nd argument of KL(p_v‖p_u).
  reverse  = KL(p_u‖sg p_v) + KL(p_v‖sg p_u): u only enters as the 1st argument of KL(p_u‖p_v).
  both     = forward + reverse.
  """
  forward = (np_grad_kl_wrt_logits(v, u, temperature), np_grad_kl_wrt_logits(u, v, temperature))
  reverse = (np_grad_kl_wrt_target(u, v, temperature), np_grad_kl_wrt_target(v, u, temperature))
  if direction == 'forward':
    return forward
  if direction == 'reverse':
    return reverse
  return tuple(f + r for f, r in zip(forward, reverse))


@pytest.mark.parametrize('direction', losses.DIRECTIONS)
def test_symmetric_kl_stop_gradient_placement(direction):
  u, v, temperature = _logits(9), _logits(10), 3.0
  grad_fn = jax.jit(jax.grad(
      lambda a, b: losses.symmetric_kl(a, b, temperature, direction).sum(), argnums=(0, 1)))
  g_u, g_v = grad_fn(u, v)
  e_u, e_v = _expected_symmetric_grads(u, v, temperature, direction)
  np.testing.assert_allclose(g_u, e_u, atol=1e-6)
  np.testing.assert_allclose(g_v, e_v, atol=1e-6)
  # The three directions really differ (so a wrong placement cannot pass by coincidence).
  others = [_expected_symmetric_grads(u, v, temperature, d)[0]
            for d in losses.DIRECTIONS if d != direction]
  assert all(np.abs(e_u - o).max() > 1e-3 for o in others)


def test_symmetric_kl_forward_equals_kl_with_detached_target():
  u, v, temperature = _logits(11), _logits(12), 2.0
  sg = jax.lax.stop_gradient

  @jax.jit
  def grads(u, v):
    g = lambda f: jax.grad(lambda a: f(a).sum())(u)
    return (
        # d/du symmetric_kl(u, v, 'forward') is d/du KL(sg p_v ‖ p_u) alone.
        g(lambda a: losses.symmetric_kl(a, v, temperature, 'forward')),
        g(lambda a: losses.kl_divergence(sg(v), a, temperature)),
        # d/du symmetric_kl(u, v, 'reverse') is d/du KL(p_u ‖ sg p_v) alone.
        g(lambda a: losses.symmetric_kl(a, v, temperature, 'reverse')),
        g(lambda a: losses.kl_divergence(a, sg(v), temperature)))

  forward_sym, forward_one, reverse_sym, reverse_one = grads(u, v)
  np.testing.assert_allclose(forward_sym, forward_one, atol=1e-7)
  np.testing.assert_allclose(reverse_sym, reverse_one, atol=1e-7)


def test_kl_check_grads_float64():
  with jax.enable_x64(True):
    t = jnp.asarray(_logits(13), jnp.float64)
    l = jnp.asarray(_logits(14), jnp.float64)
    fn = lambda a, b: losses.kl_divergence(a, b, 2.0)
    assert fn(t, l).dtype == jnp.float64
    check_grads(fn, (t, l), order=2, modes=['rev'])
    # Only 'both' is a true derivative; 'forward'/'reverse' differ from finite differences
    # by design (their stop_gradients are tested above).
    check_grads(lambda a, b: losses.symmetric_kl(a, b, 2.0, 'both'), (t, l),
                order=2, modes=['rev'])


# ---------------------------------------------------------------- dropout masks
def test_dropout_masks_match_split_and_bernoulli():
  key, shape = jax.random.key(0), (3, 7)
  for rate, k in [(0.5, 2), (0.25, 3)]:
    masks = jit_masks(key, shape, rate, k)
    chex.assert_shape(masks, (k, *shape))
    np.testing.assert_array_equal(masks, np.stack(np_masks(key, shape, rate, k)).astype(np.float32))
  np.testing.assert_array_equal(jit_masks(key, shape, 0.0, 2), np.ones((2, *shape)))


def test_dropout_masks_statistics():
  masks = np.asarray(jit_masks(jax.random.key(1), (100, 100), 0.25, 2))
  assert set(np.unique(masks)) == {0.0, np.float32(1 / 0.75)}
  assert abs((masks > 0).mean() - 0.75) < 0.02
  assert not np.array_equal(masks[0], masks[1])


# ---------------------------------------------------------------- sd_dropout
@pytest.mark.parametrize('num_samples', [2, 3])
def test_sd_dropout_matches_numpy_all_directions(num_samples):
  params, key = _head_params(), jax.random.key(42)
  features = jnp.asarray(np.random.default_rng(15).normal(size=(BATCH, DIM)), jnp.float32)
  masks = np_masks(key, features.shape, 0.5, num_samples)
  expected = np_sd_dropout(params, features, masks, 3.0)
  if num_samples == 3:  # Mean of the 3 pairs (0,1), (0,2), (1,2), spelled out.
    w, b = (np.asarray(params[n], np.float64) for n in ('w', 'b'))
    z = [(m * np.asarray(features, np.float64)) @ w + b for m in masks]
    spelled = (np_symmetric_kl(z[0], z[1], 3.0) + np_symmetric_kl(z[0], z[2], 3.0)
               + np_symmetric_kl(z[1], z[2], 3.0)) / 3
    np.testing.assert_allclose(expected, spelled, rtol=1e-12)
  assert (expected > 1e-3).all()
  for out in sd_loss_all_directions(params, features, key, num_samples).values():
    chex.assert_shape(out, (BATCH,))
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_sd_dropout_feature_map_matches_numpy():
  # Masks are element-wise over [B, H, W, C]; the head pools H, W first.
  params, key = _head_params(), jax.random.key(3)
  features = jnp.asarray(np.random.default_rng(16).normal(size=(BATCH, 3, 3, DIM)),
                         jnp.float32)
  masks = np_masks(key, features.shape, 0.5, 2)
  out = sd_loss(params, features, key, rate=0.5, temperature=2.0)
  np.testing.assert_allclose(out, np_sd_dropout(params, features, masks, 2.0), rtol=1e-5)


def test_sd_dropout_head_gradients_both_is_forward_plus_reverse():
  params, key = _head_params(), jax.random.key(4)
  features = jnp.asarray(np.random.default_rng(17).normal(size=(BATCH, DIM)), jnp.float32)
  grads = sd_head_grads_all_directions(params, features, key)
  chex.assert_trees_all_close(
      grads['both'], jax.tree.map(jnp.add, grads['forward'], grads['reverse']), atol=1e-6)
  assert np.abs(grads['forward']['w'] - grads['reverse']['w']).max() > 1e-3


def test_sd_dropout_check_grads_float64():
  with jax.enable_x64(True):
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), _head_params())
    features = jnp.asarray(np.random.default_rng(18).normal(size=(BATCH, DIM)), jnp.float64)
    key = jax.random.key(5)
    for num_samples in (2, 3):  # 'both' only: the other directions are not true derivatives.
      fn = lambda p, f: losses.sd_dropout(  # Not jitted: check_grads is cheaper eagerly here.
          linear_head(p), f, key, rate=0.5, temperature=2.0, num_samples=num_samples)
      assert fn(params, features).dtype == jnp.float64
      check_grads(fn, (params, features), order=2, modes=['rev'])


def test_sd_dropout_keys_and_rate_zero():
  params = _head_params()
  features = jnp.asarray(np.random.default_rng(19).normal(size=(BATCH, DIM)), jnp.float32)
  k1, k2 = jax.random.key(6), jax.random.key(7)
  assert not np.array_equal(jit_masks(k1, (BATCH, DIM), 0.5, 2),
                            jit_masks(k2, (BATCH, DIM), 0.5, 2))
  out1 = sd_loss(params, features, k1)
  assert not np.allclose(out1, sd_loss(params, features, k2))
  np.testing.assert_array_equal(out1, sd_loss(params, features, k1))
  for num_samples in (2, 3):
    np.testing.assert_array_equal(
        sd_loss(params, features, k1, rate=0.0, num_samples=num_samples), np.zeros(BATCH))


def test_sd_dropout_compiles_once_over_keys():
  params = _head_params()
  features = jnp.ones((BATCH, DIM), jnp.float32)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, features, key):
    return losses.sd_dropout(linear_head(params), features, key, rate=0.5, temperature=3.0)

  for step_index in range(3):
    step(params, features, jax.random.fold_in(jax.random.key(0), step_index))


# ---------------------------------------------------------------- validation
def test_validation_errors():
  params, features, key = _head_params(), jnp.ones((BATCH, DIM)), jax.random.key(0)
  u = jnp.zeros((BATCH, CLASSES))
  with pytest.raises(ValueError, match=r'rate must be in \[0, 1\), got 1\.0'):
    sd_loss(params, features, key, rate=1.0)
  with pytest.raises(ValueError, match=r'rate must be in \[0, 1\), got -0\.1'):
    jit_masks(key, (2, 3), -0.1)
  with pytest.raises(ValueError, match=r'temperature must be > 0, got 0\.0'):
    sd_loss(params, features, key, temperature=0.0)
  with pytest.raises(ValueError, match=r'temperature must be > 0, got -1\.0'):
    jit_kl(u, u, temperature=-1.0)
  for call in (lambda: jit_sym(u, u, temperature=1.0, direction='sideways'),
               lambda: sd_loss(params, features, key, direction='sideways')):
    with pytest.raises(ValueError, match=r"direction must be one of 'both', 'forward', "
                                         r"'reverse', got 'sideways'"):
      call()
  with pytest.raises(ValueError, match=r'num_samples must be an int >= 2, got 1'):
    sd_loss(params, features, key, num_samples=1)
  with pytest.raises(ValueError, match=r'num_samples must be an int >= 2, got 1'):
    jit_masks(key, (2, 3), 0.5, 1)
  with pytest.raises(ValueError, match=r'same shape, got \(4, 5\) and \(4, 3\)'):
    jit_sym(u, u[:, :3], temperature=1.0)


@pytest.mark.parametrize('bad_head, shape', [
    (lambda x: x.sum(-1), r'\(4,\)'),         # Not 2-D.
    (lambda x: x[:2], r'\(2, 6\)'),           # Wrong batch.
])
def test_validation_bad_head_output(bad_head, shape):
  sd = jax.jit(functools.partial(losses.sd_dropout, bad_head, rate=0.5, temperature=3.0))
  with pytest.raises(ValueError,
                     match=r'head_fn must return logits \[batch, classes\] with batch 4 .*'
                           + shape):
    sd(jnp.ones((BATCH, DIM)), jax.random.key(0))


# ---------------------------------------------------------------- position ablation (Table 12)
class FakeStagedNet(nn.Module):
  """Fake of the model contract: stage k = Dense on channels + BatchNorm + ReLU; pool = mean."""
  widths = (3, 4, 5, 6)
  num_classes: int = CLASSES

  def setup(self):
    self.denses = [nn.Dense(w) for w in self.widths]
    self.norms = [nn.BatchNorm(momentum=0.9) for _ in self.widths]
    self.classifier = nn.Dense(self.num_classes)

  def _stage(self, k, x, train):
    x = self.norms[k - 1](self.denses[k - 1](x), use_running_average=not train)
    return nn.relu(x)

  def stages(self, images, train):
    outputs, x = [], images
    for k in range(1, 5):
      x = self._stage(k, x, train)
      outputs.append(x)
    return outputs

  def from_stage(self, k, x, train):
    for j in range(k + 1, 5):
      x = self._stage(j, x, train)
    return x.mean(axis=(1, 2))

  def features(self, images, train):
    return self.from_stage(4, self.stages(images, train)[-1], train)

  def head(self, features):
    return self.classifier(features)

  def __call__(self, images, train):
    return self.head(self.features(images, train))


@pytest.fixture(scope='module')
def staged():
  model = FakeStagedNet()
  images = jnp.asarray(np.random.default_rng(20).normal(size=(BATCH, 4, 4, 2)), jnp.float32)
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), images)
  # One train-mode pass moves the running averages away from (0, 1), so eval mode is non-trivial.
  _, updates = jax.jit(functools.partial(model.apply, train=True, mutable=['batch_stats']))(
      variables, 2.0 * images + 1.0)
  variables = {'params': variables['params'], 'batch_stats': updates['batch_stats']}
  return model, variables, images


@pytest.mark.parametrize('position', [1, 2, 3, 4])
def test_stage_head_fn_rate_zero_is_full_forward(staged, position):
  model, variables, images = staged
  stage_outputs = model.apply(variables, images, train=False, method=model.stages)
  full = model.apply(variables, images, train=False)
  head_fn = losses.stage_head_fn(model, variables, position, train=False)
  x = stage_outputs[position - 1]
  np.testing.assert_allclose(jax.jit(head_fn)(x), full, rtol=1e-5, atol=1e-6)
  masked = jax.jit(functools.partial(losses.sd_dropout, head_fn, rate=0.0, temperature=3.0))
  np.testing.assert_array_equal(masked(x, jax.random.key(1)), np.zeros(BATCH))


def test_stage_head_fn_train_uses_masked_batch_stats_and_keeps_running_averages(staged):
  model, variables, images = staged
  before = copy.deepcopy(jax.device_get(variables))
  x3 = model.apply(variables, images, train=False, method=model.stages)[2]
  x3 = x3 * jnp.asarray(np_masks(jax.random.key(2), x3.shape, 0.5, 1)[0], jnp.float32)
  logits = jax.jit(losses.stage_head_fn(model, variables, 3, train=True))(x3)
  assert isinstance(logits, jax.Array)   # Logits only: the batch_stats update is dropped.
  chex.assert_shape(logits, (BATCH, CLASSES))
  # NumPy: stage 4 with BatchNorm on this masked input's own batch statistics, pool, head.
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables['params'])
  h = np.asarray(x3, np.float64) @ p['denses_3']['kernel'] + p['denses_3']['bias']
  h = (h - h.mean((0, 1, 2))) / np.sqrt(h.var((0, 1, 2)) + 1e-5)
  h = np.maximum(h * p['norms_3']['scale'] + p['norms_3']['bias'], 0.0)
  expected = h.mean((1, 2)) @ p['classifier']['kernel'] + p['classifier']['bias']
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
  # Eval mode (running averages) gives different logits, and nothing was changed in place.
  eval_logits = losses.stage_head_fn(model, variables, 3, train=False)(x3)
  assert np.abs(np.asarray(logits) - np.asarray(eval_logits)).max() > 1e-3
  chex.assert_trees_all_equal(jax.device_get(variables), before)


def test_sd_dropout_on_stage_feature_map(staged):
  model, variables, images = staged

  @jax.jit
  @jax.value_and_grad
  def loss(variables, images, key):
    x2 = model.apply(variables, images, train=False, method=model.stages)[1]
    head_fn = losses.stage_head_fn(model, variables, 2, train=True)
    out = losses.sd_dropout(head_fn, x2, key, rate=0.5, temperature=3.0)
    chex.assert_shape(out, (BATCH,))
    return out.mean()

  value, grads = loss(variables, images, jax.random.key(3))
  assert np.isfinite(value) and value > 0
  assert np.abs(grads['params']['denses_3']['kernel']).max() > 0


def test_stage_head_fn_position_validation(staged):
  model, variables, _ = staged
  for position in (0, 5):
    with pytest.raises(ValueError, match=rf'position must be one of 1, 2, 3, 4, got {position}'):
      losses.stage_head_fn(model, variables, position, train=False)
