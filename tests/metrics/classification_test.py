"""Tests for sdd_jax.metrics.classification: the docs/evaluation.md vectors (A1, E1, E3, O1, T1, T2, C1), NumPy and
brute-force references, jit, masking and multi-device sharding."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax.metrics import corruption as corruption_metrics
from sdd_jax.metrics import classification as metrics

# ----------------------------------------------------------------------------- accuracy (§1)


def test_a1_top1_accuracy_is_one_third_under_jit():
  logits = jnp.array([[2., 2., 1.], [0., 3., 1.], [5., 1., 5.]])
  labels = jnp.array([1, 1, 2])
  correct = jax.jit(metrics.topk_correct, static_argnums=2)(logits, labels, 1)
  np.testing.assert_array_equal(correct, [0., 1., 0.])
  assert float(correct.mean()) == pytest.approx(1 / 3)


def test_topk_tie_rule_lower_index_first():
  # Four-way tie at the top: with k = 2 only the two lowest tied indices count.
  logits = jnp.array([[1., 3., 3., 3., 3.]] * 5)
  labels = jnp.arange(5)
  np.testing.assert_array_equal(metrics.topk_correct(logits, labels, 2), [0, 1, 1, 0, 0])
  np.testing.assert_array_equal(metrics.topk_correct(logits, labels, 5), [1, 1, 1, 1, 1])


@pytest.mark.parametrize('k', [1, 2, 5])
def test_topk_matches_stable_argsort(k):
  rng = np.random.default_rng(k)
  logits = rng.integers(0, 4, size=(64, 10)).astype(np.float32)  # Many ties.
  labels = rng.integers(0, 10, size=64)
  expected = [label in np.argsort(-row, kind='stable')[:k] for row, label in zip(logits, labels)]
  got = jax.jit(metrics.topk_correct, static_argnums=2)(logits, labels, k)
  np.testing.assert_array_equal(got, np.asarray(expected, np.float32))


def test_nll_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(16, 7)) * 5
  labels = rng.integers(0, 7, size=16)
  shifted = logits - logits.max(axis=1, keepdims=True)
  expected = -(shifted[np.arange(16), labels] - np.log(np.exp(shifted).sum(axis=1)))
  got = jax.jit(metrics.nll)(jnp.asarray(logits, jnp.float32), labels)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  got16 = metrics.nll(jnp.asarray(logits, jnp.bfloat16), labels)
  assert got16.dtype == jnp.float32  # §0.2: evaluation never runs below float32.


def test_confidence_and_correct_takes_first_maximal_index():
  logits = jnp.array([[2., 2., 1.], [0., 3., 1.]])
  confidences, correct = jax.jit(metrics.confidence_and_correct)(logits, jnp.array([1, 1]))
  e = np.exp([2., 2., 1.])
  np.testing.assert_allclose(confidences, [e[0] / e.sum(), np.exp(3) / np.exp([0, 3, 1]).sum()],
                             rtol=1e-6)
  np.testing.assert_array_equal(correct, [0., 1.])


# ----------------------------------------------------------------------------- ECE (§2)

E1_CONF = [0.95, 0.92, 0.85, 0.81, 0.66, 0.62, 0.55, 0.45, 0.35, 0.28]
E1_CORRECT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1]
E1_TABLE = {2: (1, 1.0, 0.28), 3: (1, 0.0, 0.35), 4: (1, 0.0, 0.45), 5: (1, 1.0, 0.55),
            6: (2, 0.5, 0.64), 8: (2, 0.5, 0.83), 9: (2, 1.0, 0.935)}


def _e1_logits():
  """§2 end-to-end form: K = 4, c_i at class i mod 4, (1 − c_i)/3 elsewhere."""
  conf = np.asarray(E1_CONF)
  probs = np.repeat(((1 - conf) / 3)[:, None], 4, axis=1)
  classes = np.arange(10) % 4
  probs[np.arange(10), classes] = conf
  labels = np.where(np.asarray(E1_CORRECT) == 1, classes, (classes + 1) % 4)
  return jnp.asarray(np.log(probs), jnp.float32), jnp.asarray(labels)


def _check_e1_table(table):
  assert [row['bin'] for row in table] == sorted(E1_TABLE)  # Bins 0, 1 and 7 are empty.
  for row in table:
    count, acc, conf = E1_TABLE[row['bin']]
    assert row['count'] == count
    assert row['acc'] == pytest.approx(acc, abs=1e-6)
    assert row['conf'] == pytest.approx(conf, abs=1e-6)
    assert row['lower'] == pytest.approx(row['bin'] / 10)
    assert row['upper'] == pytest.approx(row['bin'] / 10 + 0.1)


def test_e1_from_confidences():
  stats = jax.jit(metrics.calibration_bin_stats)(jnp.float32(E1_CONF), jnp.float32(E1_CORRECT))
  ece, table = metrics.ece_from_bin_stats(stats)
  assert ece == pytest.approx(0.304, abs=1e-6)
  _check_e1_table(table)
  assert metrics.expected_calibration_error(E1_CONF, E1_CORRECT) == pytest.approx(0.304, abs=1e-12)


def test_e1_end_to_end_from_logits():
  logits, labels = _e1_logits()
  confidences, correct = metrics.confidence_and_correct(logits, labels)
  np.testing.assert_allclose(confidences, E1_CONF, rtol=1e-6)
  assert float(correct.mean()) == pytest.approx(0.6)
  ece, table = metrics.ece_from_bin_stats(metrics.calibration_bin_stats(confidences, correct))
  assert ece == pytest.approx(0.304, abs=1e-6)
  _check_e1_table(table)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_e3_edge_conventions_give_0_2000(dtype):
  conf, correct = np.asarray([1.0, 1.0, 0.95, 0.5, 0.45], dtype), [1, 0, 1, 1, 0]
  # Not 0.38 (histogram, [lo, hi) bins) nor 0.40 (torchmetrics, extra bin for 1.0).
  assert metrics.expected_calibration_error(conf, correct) == pytest.approx(0.2, abs=1e-12)
  if dtype == np.float32:
    ece, table = metrics.ece_from_bin_stats(metrics.calibration_bin_stats(conf, jnp.float32(correct)))
    assert ece == pytest.approx(0.2, abs=1e-6)
    assert [(row['bin'], row['count']) for row in table] == [(4, 2), (9, 3)]
    assert table[1]['acc'] == pytest.approx(2 / 3)
    assert table[1]['conf'] == pytest.approx(0.98333333, abs=1e-6)


def test_float32_edge_one_ulp_above_0_9_goes_to_bin_9():
  above = np.nextafter(np.float32(0.9), np.float32(1))
  assert repr(above) == 'np.float32(0.90000004)'
  assert int(np.ceil(above * np.float32(10))) - 1 == 8  # The rule the spec forbids.
  conf = jnp.asarray([above, np.float32(0.9), np.float32(1.0), np.float32(0.1),
                      np.nextafter(np.float32(0.1), np.float32(1)), np.float32(1e-8)])
  np.testing.assert_array_equal(jax.jit(metrics.calibration_bin_index)(conf), [9, 8, 9, 0, 1, 0])
  np.testing.assert_array_equal(metrics.calibration_bin_index(conf), [9, 8, 9, 0, 1, 0])


def test_torchmetrics_docstring_example_gives_0_2000_with_3_bins():
  probs = jnp.array([[.25, .20, .55], [.55, .05, .40], [.10, .30, .60], [.90, .05, .05]])
  conf, correct = metrics.confidence_and_correct(jnp.log(probs), jnp.array([0, 1, 2, 0]))
  stats = metrics.calibration_bin_stats(conf, correct, num_bins=3)
  assert metrics.ece_from_bin_stats(stats)[0] == pytest.approx(0.2, abs=1e-6)


def _guo_loop_ece(conf, correct, num_bins=10):
  """Independent reference: gpleiss `_ECELoss`, bins lower < c <= upper from linspace."""
  bounds = np.linspace(0, 1, num_bins + 1).astype(conf.dtype)
  correct = np.asarray(correct, np.float64)
  ece = 0.0
  for lower, upper in zip(bounds[:-1], bounds[1:]):
    in_bin = (conf > lower) & (conf <= upper)
    if in_bin.any():
      ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].astype(np.float64).mean())
  return ece


def _random_batches(seed, num_batches=5, batch=16):
  """Float32 confidences including exact edges and one-ulp neighbours, plus padded rows."""
  rng = np.random.default_rng(seed)
  edges = np.arange(1, 11, dtype=np.float32) / np.float32(10)
  pool = np.concatenate([edges, np.nextafter(edges, np.float32(0)),
                         np.nextafter(edges, np.float32(2))[:-1]])
  conf = rng.uniform(0.01, 1, size=(num_batches, batch)).astype(np.float32)
  conf[:, ::3] = rng.choice(pool, size=conf[:, ::3].shape)
  correct = rng.integers(0, 2, size=(num_batches, batch)).astype(np.float32)
  mask = np.ones((num_batches, batch), np.float32)
  for b in range(num_batches):
    mask[b, batch - b * 3:] = 0  # Padded tail; the pad rows hold junk.
  return conf, correct, mask


def test_accumulated_masked_bin_stats_equal_independent_loop():
  conf, correct, mask = _random_batches(0)
  stats_fn = chex.assert_max_traces(n=1)(metrics.calibration_bin_stats)
  stats_fn = jax.jit(stats_fn)
  total = None
  for b in range(conf.shape[0]):
    stats = stats_fn(conf[b], correct[b], mask[b])
    total = stats if total is None else jax.tree.map(jnp.add, total, stats)
  ece, table = metrics.ece_from_bin_stats(total)
  keep = mask.reshape(-1) > 0
  flat_conf, flat_correct = conf.reshape(-1)[keep], correct.reshape(-1)[keep]
  assert ece == pytest.approx(_guo_loop_ece(flat_conf, flat_correct), abs=1e-6)
  assert sum(row['count'] for row in table) == keep.sum()
  assert metrics.expected_calibration_error(flat_conf, flat_correct) == pytest.approx(
      _guo_loop_ece(flat_conf, flat_correct), abs=1e-12)


def test_masked_bin_stats_equal_subset():
  conf, correct, mask = _random_batches(1, num_batches=1, batch=32)
  conf, correct, mask = conf[0], correct[0], mask[0]
  mask[::5] = 0
  keep = mask > 0
  masked = metrics.calibration_bin_stats(conf, correct, mask)
  subset = metrics.calibration_bin_stats(conf[keep], correct[keep])
  chex.assert_trees_all_close(masked, subset, rtol=1e-6)


def test_bin_stats_sharded_over_8_devices_equal_single_device():
  assert jax.device_count() == 8
  conf, correct, mask = _random_batches(2, num_batches=1, batch=64)
  mesh = jax.make_mesh((8,), ('data',))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  args = [jax.device_put(x[0], sharding) for x in (conf, correct, mask)]
  sharded = jax.jit(metrics.calibration_bin_stats)(*args)
  single = metrics.calibration_bin_stats(conf[0], correct[0], mask[0])
  chex.assert_trees_all_close(sharded, single, rtol=1e-6)


def test_ece_from_empty_bin_stats_raises():
  stats = metrics.calibration_bin_stats(jnp.float32([0.5]), jnp.float32([1]), jnp.float32([0]))
  with pytest.raises(ValueError, match='no examples'):
    metrics.ece_from_bin_stats(stats)


# ----------------------------------------------------------------------------- ODIN helpers (§5.1)


def test_odin_sign_maps_zero_to_plus_one():
  g = jnp.array([-2., -0., 0., 1e-30, -1e-30])
  np.testing.assert_array_equal(jax.jit(metrics.odin_sign)(g), [-1, 1, 1, 1, -1])
  assert float(jnp.sign(0.)) == 0.  # Why the helper exists.


def test_o1_odin_score_float64():
  """O1: F1's linear model, T = 1000, ε = 0.0014, in float64 (rtol 1e-9)."""
  with jax.enable_x64(True):
    mean = jnp.array([0.5071, 0.4865, 0.4409])
    std = jnp.array([0.2673, 0.2564, 0.2762])
    w = jnp.array([[1., -2., .5], [-1., 1., 2.], [.5, .5, -1.]])
    b = jnp.array([.1, 0., -.1])
    logits_fn = lambda x: w @ ((x - mean) / std) + b
    x = jnp.array([0.2, 0.5, 0.8])
    temperature, epsilon = 1000.0, 0.0014
    predicted = jnp.argmax(logits_fn(x))[None]
    assert int(predicted[0]) == 1
    loss_fn = lambda x: metrics.nll(logits_fn(x)[None] / temperature, predicted).sum()
    grads = jax.grad(loss_fn)(x)
    np.testing.assert_allclose(grads, [4.3578e-3, -4.5449e-3, -5.4204e-3], rtol=1e-4)
    x_odin = x - epsilon * metrics.odin_sign(grads)
    np.testing.assert_allclose(x_odin, [0.1986, 0.5014, 0.8014], rtol=1e-12)
    # Stepping the normalised input by ε/σ gives the same image.
    grads_n = jax.grad(lambda xn: loss_fn(xn * std + mean))((x - mean) / std)
    np.testing.assert_allclose(grads_n, [1.16483e-3, -1.16531e-3, -1.49712e-3], rtol=1e-4)
    xn_odin = (x - mean) / std - epsilon / std * metrics.odin_sign(grads_n)
    np.testing.assert_allclose(xn_odin * std + mean, x_odin, rtol=1e-12)
    np.testing.assert_allclose(logits_fn(x_odin), [-0.517751774, 3.822673483, -1.953224417],
                               atol=1e-9)
    score = metrics.max_log_softmax(logits_fn(x_odin)[None], temperature)[0]
    assert float(score) == pytest.approx(-1.095243196748, rel=1e-9)
    assert float(jnp.exp(score)) == pytest.approx(0.334458257897, rel=1e-9)
    clean = metrics.max_log_softmax(logits_fn(x)[None], temperature)[0]
    assert float(jnp.exp(clean)) == pytest.approx(0.334451551334, rel=1e-9)
    msp = metrics.max_log_softmax(logits_fn(x)[None])[0]
    assert float(jnp.exp(msp)) == pytest.approx(0.983603049569, rel=1e-9)


# ----------------------------------------------------------------------------- mCA (§4)


def test_corruption_constants():
  assert len(corruption_metrics.BENCHMARK_CORRUPTIONS) == 15 and len(corruption_metrics.EXTRA_CORRUPTIONS) == 4
  assert len(set(corruption_metrics.ALL_CORRUPTIONS)) == 19
  assert 'glass_blur' in corruption_metrics.BENCHMARK_CORRUPTIONS  # File names, not TFDS config names.
  assert 'elastic_transform' in corruption_metrics.BENCHMARK_CORRUPTIONS


def test_c1_mca():
  acc = {'gaussian_noise': [0.9, 0.8, 0.7, 0.6, 0.5], 'fog': [1.0, 0.9, 0.6, 0.4, 0.1]}
  summary = corruption_metrics.corruption_summary(acc)
  assert summary['mca15'] == pytest.approx(0.65)
  assert summary['mca19'] == pytest.approx(0.65)
  assert summary['per_corruption'] == pytest.approx({'gaussian_noise': 0.7, 'fog': 0.6})
  np.testing.assert_allclose(summary['per_severity'], [0.95, 0.85, 0.65, 0.5, 0.3])
  # Pooling the 10,000-image blocks of each file gives the same answer.
  correct = np.concatenate([np.repeat([1, 0], [int(a * 10000), 10000 - int(a * 10000)])
                            for row in acc.values() for a in row])
  assert correct.mean() == pytest.approx(summary['mca15'])


def test_mca15_excludes_extras_and_mca19_includes_them():
  acc = {name: [0.6] * 5 for name in corruption_metrics.BENCHMARK_CORRUPTIONS}
  acc.update({name: [0.2] * 5 for name in corruption_metrics.EXTRA_CORRUPTIONS})
  summary = corruption_metrics.corruption_summary(acc)
  assert summary['mca15'] == pytest.approx(0.6)
  assert summary['mca19'] == pytest.approx((15 * 0.6 + 4 * 0.2) / 19)
  assert (summary['num_benchmark'], summary['num_all']) == (15, 19)
  np.testing.assert_allclose(summary['per_severity'], [0.6] * 5)
  np.testing.assert_allclose(summary['per_severity_all'], [(15 * 0.6 + 4 * 0.2) / 19] * 5)


def test_corruption_summary_errors():
  with pytest.raises(ValueError, match="unknown corruption.*'frosted_glass_blur'.*known: "):
    corruption_metrics.corruption_summary({'frosted_glass_blur': [0.5] * 5})
  with pytest.raises(ValueError, match="'snow': need 5 accuracies"):
    corruption_metrics.corruption_summary({'snow': [0.5] * 4})
