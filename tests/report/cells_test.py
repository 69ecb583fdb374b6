"""sdd_jax.report.cells: bold marks a difference by Welch's t-test, computed here by hand."""
import math

import pytest
from scipy import stats

from sdd_jax.report import cells


def welch_p(a, b):
  """Two-sided p of Welch's t-test from its definition (t and Welch-Satterthwaite df)."""
  ma, mb = sum(a) / len(a), sum(b) / len(b)
  va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
  vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
  se = math.sqrt(va + vb)
  df = se ** 4 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
  return 2 * stats.t.sf(abs(ma - mb) / se, df)


def bold(*columns, lower=False):
  rows = [[cells.Cell(tuple(c)) for c in columns]]
  cells.embolden(rows, [(0, c) for c in range(len(columns))], lower)
  return [c.bold for c in rows[0]]


def test_the_issues_example_is_not_bold():
  # +0.14 at n = 2, both std 0.5: SE = sqrt(0.25/2 + 0.25/2) = 0.5, t = 0.28 on 2 df.
  base = (70.0 - 0.5 / math.sqrt(2), 70.0 + 0.5 / math.sqrt(2))  # mean 70, sample std 0.5
  plus = tuple(v + 0.14 for v in base)
  assert cells.Cell(base).std == pytest.approx(0.5)
  assert welch_p(plus, base) == pytest.approx(0.806, abs=1e-3)
  assert bold(base, plus) == [False, False]


def test_a_difference_beyond_noise_is_bold_and_the_p_value_decides():
  a, b = (70.0, 72.0), (80.0, 82.0)  # t = 10 / sqrt(2/2 + 2/2) = 7.07, 2 df, p = 0.019
  assert welch_p(a, b) == pytest.approx(0.0194, abs=1e-4)
  assert bold(a, b) == [False, True]
  assert bold(a, b, lower=True) == [True, False]
  c, d = (70.0, 72.0), (73.0, 75.0)  # t = 2.12, p = 0.17: no bold
  assert welch_p(c, d) > cells.ALPHA and bold(c, d) == [False, False]
  # Near the threshold the test (not a rule of thumb) decides: 3 seeds each, std 1.
  for gap, want in ((2.0, False), (2.5, True)):
    e = (69.0, 70.0, 71.0)
    f = tuple(v + gap for v in e)
    assert (welch_p(e, f) < 0.05) == want, welch_p(e, f)
    assert bold(e, f) == [False, want]


def test_the_best_must_beat_every_other_cell():
  best, close, far = (90.0, 91.0, 92.0), (89.5, 90.5, 91.5), (50.0, 51.0, 52.0)
  assert welch_p(best, close) > 0.05 and welch_p(best, far) < 0.05
  assert bold(best, far) == [True, False]
  assert bold(best, close, far) == [False, False, False]


def test_never_bold_below_two_seeds_and_no_spread():
  assert bold((70.0,), (90.0,)) == [False, False]
  assert bold((70.0, 71.0), (90.0,)) == [False, False]  # one side has no spread to test
  assert bold((70.0, 70.0), (71.0, 71.0)) == [False, True]  # exact repeats that differ
  assert bold((70.0, 70.0), (70.0, 70.0)) == [False, False]
  assert bold((70.0, 72.0), ()) == [False, False]  # nothing to compare with
