"""Tests for sdd_jax.metrics.selective: AURC and E-AURC against hand-worked numbers, a loop over
coverage, PS-KD's own formula (re-typed here from lgcnsai/PS-KD-Pytorch `utils/metric.py`), every
order of tied examples, and the non-finite rule (docs/evaluation.md §2.1)."""
import itertools

import numpy as np
import pytest

from sdd_jax.metrics import selective


def _aurc_by_coverage(confidences, correct):
  """Brute force: for each coverage i/N, the error rate of the i most confident (distinct
  confidences), then the mean over i."""
  n = len(confidences)
  risks = []
  for i in range(1, n + 1):
    threshold = np.sort(confidences)[::-1][i - 1]
    accepted = [c for conf, c in zip(confidences, correct) if conf >= threshold]
    assert len(accepted) == i
    risks.append(sum(1 - c for c in accepted) / i)
  return sum(risks) / n


def _ps_kd(confidences, correct):
  """PS-KD's calc_aurc on distinct confidences: (aurc, eaurc)."""
  order = np.argsort(confidences)[::-1]
  wrong = 1 - np.asarray(correct)[order]
  n, n_wrong = len(wrong), int(wrong.sum())
  aurc = np.mean(np.cumsum(wrong) / np.arange(1, n + 1))
  opt = np.sum(np.arange(1, n_wrong + 1) / (n - n_wrong + np.arange(1, n_wrong + 1))) / n
  return aurc, aurc - opt


def test_hand_worked():
  # Ranked correct [1, 0, 1, 0]: risks 0, 1/2, 1/3, 2/4; optimal [1, 1, 0, 0]: 0, 0, 1/3, 2/4.
  out = selective.aurc([0.6, 0.8, 0.9, 0.7], [0, 0, 1, 1])
  assert out['aurc'] == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
  assert out['optimal_aurc'] == pytest.approx((1 / 3 + 1 / 2) / 4)
  assert out['eaurc'] == pytest.approx(0.125)
  assert out['risk'] == 0.5
  assert out['optimal_aurc_closed_form'] == pytest.approx(0.5 + 0.5 * np.log(0.5))
  coverage, risk = selective.risk_coverage([0.6, 0.8, 0.9, 0.7], [0, 0, 1, 1])
  np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
  np.testing.assert_allclose(risk, [0, 1 / 2, 1 / 3, 1 / 2])


@pytest.mark.parametrize('seed', [0, 1])
def test_equals_a_loop_over_coverage_and_ps_kd(seed):
  rng = np.random.default_rng(seed)
  confidences = rng.permutation(np.linspace(0.1, 1.0, 57))  # distinct
  correct = (rng.random(57) < confidences).astype(int)
  out = selective.aurc(confidences, correct)
  assert out['aurc'] == pytest.approx(_aurc_by_coverage(confidences, correct), abs=1e-12)
  ps_kd_aurc, ps_kd_eaurc = _ps_kd(confidences, correct)
  assert (out['aurc'], out['eaurc']) == pytest.approx((ps_kd_aurc, ps_kd_eaurc), abs=1e-12)
  # The optimal AURC is the AURC of ranking every correct example first (brute force).
  assert out['optimal_aurc'] == pytest.approx(
      _aurc_by_coverage(correct + confidences / 10, correct), abs=1e-12)
  assert out['eaurc'] > 0


def test_ties_are_the_average_over_every_order():
  # Hand-worked: ties 0.9 {right, wrong}: orders give risks (0, 1/2, 1/3) and (1, 1/2, 1/3).
  out = selective.aurc([0.9, 0.9, 0.5], [1, 0, 1])
  assert out['aurc'] == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
  rng = np.random.default_rng(3)
  confidences = rng.choice([0.3, 0.6, 0.8, 1.0], size=7)
  correct = rng.integers(0, 2, size=7)
  values = [selective.aurc(-np.arange(7.0), correct[list(p)])['aurc']
            for p in itertools.permutations(range(7))
            if all(confidences[p[i]] >= confidences[p[i + 1]] for i in range(6))]
  assert len(values) > 1
  assert selective.aurc(confidences, correct)['aurc'] == pytest.approx(np.mean(values))
  shuffled = rng.permutation(7)
  assert selective.aurc(confidences[shuffled], correct[shuffled])['aurc'] == pytest.approx(
      np.mean(values), abs=1e-15)


def test_perfect_ranking_has_zero_eaurc_and_all_wrong_is_defined():
  assert selective.aurc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])['eaurc'] == pytest.approx(0.0)
  out = selective.aurc([0.9, 0.5], [0, 0])
  assert (out['aurc'], out['eaurc'], out['optimal_aurc_closed_form']) == (1.0, 0.0, 1.0)


def test_nonfinite_ranks_most_confident_and_wrong():
  # A non-finite row (given confidence 0.1 and "correct") goes first and counts as wrong,
  # ahead even of a finite confidence of 1.0: ranked correct [0, 1, 1].
  out = selective.aurc([1.0, 0.1, 0.5], [1, 1, 1], nonfinite=[False, True, False])
  assert out['aurc'] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
  assert out['risk'] == pytest.approx(1 / 3)
  with pytest.raises(ValueError, match='no examples'):
    selective.aurc([], [])
