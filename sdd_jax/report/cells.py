"""Cells of the report's tables, and the one markdown-table renderer of the library (the
report's tables and each evaluation's `evals/report.md` use it).

A cell is the mean ± sample standard deviation (ddof=1) over a group's seeds, `(n=k)` when
k < 3 or k differs from the table's most common count, `–` when no run has the number.
Numbers print with 2 decimals. Lower is better for ECE (every variant), NLL, Brier, AURC,
E-AURC, FPR95 and the detection error.

Bold marks a difference, not a ranking: the best cell of a comparison is bold only when
Welch's t-test (unequal variances; Welch 1947, "The generalization of Student's problem when
several different population variances are involved") finds it better than every other cell of
that comparison, two-sided, p < 0.05: t = (m_a - m_b) / SE, SE = sqrt(s_a²/n_a + s_b²/n_b)
(the standard error of the difference of the means, s the sample std), with the
Welch-Satterthwaite degrees of freedom SE⁴ / ((s_a²/n_a)² / (n_a - 1) + (s_b²/n_b)² / (n_b - 1))
(`scipy.stats.ttest_ind_from_stats(..., equal_var=False)`). A cell of fewer than 2 seeds is
never bold and makes no other cell of its comparison bold; two cells of zero spread differ
when their means do. So +0.14 at n = 2 with std 0.5 (SE 0.5) is not bold.
"""
import collections
import dataclasses
import math
from typing import Any, Callable, List, Optional, Sequence, Tuple

from scipy import stats

DASH = '–'
STD_NOTE = ('mean ± sample std (ddof=1) over seeds; (n=k): k seeds where fewer than 3 or '
            'unusual; bold: the best of the comparison, only where Welch\'s t-test finds it '
            'better than each other cell (two-sided p < 0.05; never with fewer than 2 seeds)')
ALPHA = 0.05  # the significance level of the bold
# Metrics (the last part of the key) where lower is better.
LOWER_IS_BETTER = ('ece', 'nll', 'fpr95', 'detection_error', 'brier', 'aurc', 'eaurc',
                   'ece_adaptive', 'ece_classwise', 'ece_before', 'ece_after', 'nll_before',
                   'nll_after')


def lower_is_better(key: str) -> bool:
  return key.rsplit('/', 1)[-1] in LOWER_IS_BETTER


# --- cells --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Cell:
  values: Tuple[float, ...]
  bold: bool = False
  gain: Optional[float] = None  # printed as (+x.xx) after the number
  note: str = ''  # printed after the gain, e.g. the weight of the cell's runs: (λ=1)

  @property
  def mean(self) -> Optional[float]:
    return sum(self.values) / len(self.values) if self.values else None

  @property
  def std(self) -> Optional[float]:
    """The sample standard deviation (ddof=1); None for fewer than 2 values."""
    n = len(self.values)
    if n < 2:
      return None
    return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (n - 1))

  def text(self, usual_n: int) -> str:
    n = len(self.values)
    if n == 0:
      return DASH
    text = f'{self.mean:.2f}'
    if n > 1:
      text += f' ± {self.std:.2f}'
    if self.bold:
      text = f'**{text}**'
    if self.gain is not None:
      text += f' ({self.gain:+.2f})'
    if self.note:
      text += f' {self.note}'
    if n < 3 or n != usual_n:
      text += f' (n={n})'
    return text


def differs(a: Cell, b: Cell) -> bool:
  """Whether the means of `a` and `b` differ by Welch's t-test, two-sided, p < `ALPHA` (the
  module docstring); False when either has fewer than 2 values."""
  if len(a.values) < 2 or len(b.values) < 2:
    return False
  if a.std == 0 and b.std == 0:
    return a.mean != b.mean
  _, p = stats.ttest_ind_from_stats(a.mean, a.std, len(a.values), b.mean, b.std,
                                    len(b.values), equal_var=False)
  return bool(p < ALPHA)


def embolden(rows: List[List[Any]], where: Sequence[Tuple[int, int]], lower: bool = False):
  """Makes bold, in place, the best Cell (by its mean) among `rows[r][c]` for (r, c) in
  `where`, when it `differs` from each other one there with a number; nothing when fewer than
  two of them have a number or the best is shared."""
  cells = {(r, c): rows[r][c] for r, c in where
           if isinstance(rows[r][c], Cell) and rows[r][c].values}
  if len(cells) < 2:
    return
  best = (min if lower else max)(cells, key=lambda rc: cells[rc].mean)
  if all(differs(cells[best], cell) for rc, cell in cells.items() if rc != best):
    rows[best[0]][best[1]] = dataclasses.replace(cells[best], bold=True)


def with_gain(base: Cell, plus: Cell) -> Cell:
  """`plus` carrying its gain over `base` (when both have a number)."""
  if not (base.values and plus.values):
    return plus
  return dataclasses.replace(plus, gain=plus.mean - base.mean)


def markdown_table(columns: Sequence[Any], rows: Sequence[Sequence[Any]],
                   text: Callable[[Any], str] = str) -> str:
  """A markdown table: a header row, the separator, one line per row; `text` prints each
  header and cell."""
  lines = ['| ' + ' | '.join(text(c) for c in columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(text(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


def markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A markdown table of Cells (and strings), printed with the table's most common seed count."""
  counts = collections.Counter(len(c.values) for row in rows for c in row
                               if isinstance(c, Cell) and c.values)
  usual = max(counts, key=lambda n: (counts[n], n)) if counts else 0
  return markdown_table(columns, rows, lambda c: c.text(usual) if isinstance(c, Cell) else str(c))
