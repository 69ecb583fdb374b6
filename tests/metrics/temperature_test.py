"""Tests for sdd_jax.metrics.temperature: T* against independent computations (a fine NumPy grid
over T, and the first-order condition of the NLL in 1/T), the cross-fitting split."""
import numpy as np
import pytest

from sdd_jax.metrics import temperature


def _logits(n=400, classes=5, scale=4.0, seed=0):
  """Over-confident logits: correct 70% of the time, with large margins."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, classes, n)
  logits = rng.normal(size=(n, classes))
  predicted = np.where(rng.random(n) < 0.7, labels, (labels + 1) % classes)
  logits[np.arange(n), predicted] += 2.0
  return scale * logits, labels


def _grid_nll(logits, labels, ts):
  """Mean NLL at each T of `ts`, by hand: log-sum-exp with the max subtracted, float64."""
  out = []
  for t in ts:
    z = logits / t
    top = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    out.append(np.mean(lse - z[np.arange(len(z)), labels]))
  return np.asarray(out)


def test_t_star_matches_a_fine_grid_and_the_first_order_condition():
  logits, labels = _logits()
  fit = temperature.fit_temperature(logits, labels)
  coarse = np.linspace(0.5, 10.0, 951)  # step 1e-2, then 1e-5 around its minimum
  t0 = coarse[np.argmin(_grid_nll(logits, labels, coarse))]
  ts = np.linspace(t0 - 0.01, t0 + 0.01, 2001)
  nlls = _grid_nll(logits, labels, ts)
  assert fit['t'] == pytest.approx(ts[np.argmin(nlls)], abs=2e-5)
  assert fit['t'] > 1.5  # over-confident logits are softened
  assert fit['nll'] == pytest.approx(nlls.min(), abs=1e-7)
  assert fit['nll_t1'] == pytest.approx(_grid_nll(logits, labels, [1.0])[0], rel=1e-12)
  # d/dβ mean NLL(βz) = mean(Σ_k softmax(βz)_k z_k − z_y) = 0 at β = 1/T*.
  z = logits / fit['t']
  p = np.exp(z - z.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  gradient = np.mean((p * logits).sum(axis=1) - logits[np.arange(len(z)), labels])
  assert abs(gradient) < 1e-4 * np.abs(logits).mean()
  assert fit['n'] == 400 and fit['at_bound'] == 0.0


def test_under_confident_logits_get_t_below_one_and_nonfinite_rows_are_left_out():
  logits, labels = _logits(scale=0.3, seed=1)
  fit = temperature.fit_temperature(logits, labels)
  assert fit['t'] < 1.0
  broken = np.concatenate([logits, [[np.nan] * 5, [np.inf, 0, 0, 0, 0]]])
  fit2 = temperature.fit_temperature(broken, np.concatenate([labels, [0, 1]]))
  assert fit2['t'] == fit['t'] and fit2['n'] == 400
  with pytest.raises(ValueError, match='no example with finite logits'):
    temperature.fit_temperature(np.full((2, 3), np.nan), np.array([0, 1]))


def test_a_fit_set_without_an_error_gets_t_one():
  """All labels have the largest logit: the NLL falls monotonically as T -> 0 (checked on a
  grid by hand), T is not identified, and the fit returns T = 1, flagged."""
  logits = np.array([[5.0, 0.0, 1.0], [0.0, 5.0, 4.0], [2.0, 1.0, 3.0]])
  labels = np.array([0, 1, 2])
  nlls = _grid_nll(logits, labels, np.geomspace(0.01, 100, 50))
  assert np.all(np.diff(nlls) >= 0) and nlls[-1] > nlls[0]  # the infimum is at T -> 0
  fit = temperature.fit_temperature(logits, labels)
  assert (fit['t'], fit['separable'], fit['iterations']) == (1.0, 1.0, 0)
  assert fit['nll'] == fit['nll_t1'] == pytest.approx(_grid_nll(logits, labels, [1.0])[0])
  wrong = temperature.fit_temperature(logits, np.array([0, 1, 1]))  # one error: identified
  assert wrong['separable'] == 0.0 and wrong['at_bound'] == 0.0


def test_cross_fit_folds_are_parity_disjoint_and_each_scored_by_the_other():
  logits, labels = _logits(n=101, seed=2)
  index = np.random.default_rng(3).permutation(101)  # any order: the fold is the index's
  temps, fits = temperature.cross_fit(logits, labels, index)
  even, odd = index % 2 == 0, index % 2 == 1
  assert not np.any(even & odd) and np.all(even | odd) and even.sum() == 51
  assert fits['even']['t'] == temperature.fit_temperature(logits[even], labels[even])['t']
  assert fits['odd']['t'] == temperature.fit_temperature(logits[odd], labels[odd])['t']
  np.testing.assert_array_equal(temps[even], fits['odd']['t'])
  np.testing.assert_array_equal(temps[odd], fits['even']['t'])
  np.testing.assert_array_equal(temperature.cross_fit_folds(index), index % 2)
