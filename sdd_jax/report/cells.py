"""Cells of the report's tables, and the one markdown-table renderer of the library (the
report's tables and each evaluation's `evals/report.md` use it).

A cell is the mean ± sample standard deviation (ddof=1) over a group's seeds, `(n=k)` when
k < 3 or k differs from the table's most common count, `–` when no run has the number.
Numbers print with 2 decimals. Lower is better for ECE, NLL, FPR95 and the detection error.
"""
import collections
import dataclasses
import math
from typing import Any, Callable, List, Optional, Sequence, Tuple

DASH = '–'
STD_NOTE = ('mean ± sample std (ddof=1) over seeds; (n=k): k seeds where fewer than 3 or '
            'unusual; bold: best of the comparison')
# Metrics (the last part of the key) where lower is better.
LOWER_IS_BETTER = ('ece', 'nll', 'fpr95', 'detection_error')


def lower_is_better(key: str) -> bool:
  return key.rsplit('/', 1)[-1] in LOWER_IS_BETTER


# --- cells --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Cell:
  values: Tuple[float, ...]
  bold: bool = False
  gain: Optional[float] = None  # printed as (+x.xx) after the number

  @property
  def mean(self) -> Optional[float]:
    return sum(self.values) / len(self.values) if self.values else None

  def text(self, usual_n: int) -> str:
    n = len(self.values)
    if n == 0:
      return DASH
    text = f'{self.mean:.2f}'
    if n > 1:
      std = math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (n - 1))
      text += f' ± {std:.2f}'
    if self.bold:
      text = f'**{text}**'
    if self.gain is not None:
      text += f' ({self.gain:+.2f})'
    if n < 3 or n != usual_n:
      text += f' (n={n})'
    return text


def embolden(rows: List[List[Any]], where: Sequence[Tuple[int, int]], lower: bool = False):
  """Makes bold, in place, the best Cell (by its printed mean) among `rows[r][c]` for (r, c) in
  `where`; nothing when fewer than two of them have a number."""
  means = {(r, c): round(rows[r][c].mean, 2) for r, c in where
           if isinstance(rows[r][c], Cell) and rows[r][c].values}
  if len(means) < 2:
    return
  best = (min if lower else max)(means.values())
  for (r, c), mean in means.items():
    if mean == best:
      rows[r][c] = dataclasses.replace(rows[r][c], bold=True)


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
