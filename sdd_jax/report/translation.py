"""The report's translation table: PS-KD against the label-smoothed baseline per direction,
beside the paper's figures (seed 003, IWSLT15).

A translation run is a workdir whose `config.json` has `task == 'translation'`; its numbers
are `summary.json`'s `test/bleu` (sacreBLEU, detokenised) and `test/bleu_tok` (tokenised BLEU,
as fairseq's `--remove-bpe` figure); a run without `test/bleu` (still training) has no number.
Rows are the method sets (`LS baseline` = label smoothing alone; PS-KD on label smoothing;
PS-KD alone; anything else by its method names), columns per direction
(`data.source_lang` -> `data.target_lang`, de->en and en->de first): sacreBLEU, tokenised
BLEU, and the paper's figure. Cells are the report's (`cells.py`: mean ± sample std over
seeds, `(n=k)` where unusual, the best of each column bold where Welch's test finds a
difference: `cells.embolden`); a cell with several
configurations shows the one with most seeds and gets a footnote.

The paper's figures: PS-KD 36.2 (de->en) and 30.0 (en->de), from the abstract of seed 003, the
only part of the paper the stored text holds; its baseline figures are not in it (`–`). The
paper's PS-KD row is printed beside both of our PS-KD rows: the stored text does not say
whether its PS-KD was stacked on label smoothing.
"""
import collections
from typing import Dict, List, Sequence, Tuple

from sdd_jax.report.cells import DASH, STD_NOTE, embolden, markdown
from sdd_jax.report.runs import Group, Run, method_name
from sdd_jax.report.tables import cell

TASK = 'translation'
LS, PSKD_ON_LS, PSKD = 'label_smoothing', 'label_smoothing+ps_kd', 'ps_kd'
ROW_LABELS = {LS: 'LS baseline', PSKD_ON_LS: 'PS-KD (on LS)', PSKD: 'PS-KD',
              'ce': 'Cross-entropy'}
ROW_ORDER = (LS, PSKD_ON_LS, PSKD, 'ce')
DIRECTION_ORDER = (('de', 'en'), ('en', 'de'))
# (method set, direction) -> the paper's BLEU (seed 003's abstract).
PAPER_BLEU = {(PSKD, ('de', 'en')): 36.2, (PSKD, ('en', 'de')): 30.0,
              (PSKD_ON_LS, ('de', 'en')): 36.2, (PSKD_ON_LS, ('en', 'de')): 30.0}
METRICS = (('sacreBLEU', 'test/bleu'), ('tok. BLEU', 'test/bleu_tok'))


def is_translation(run: Run) -> bool:
  """A run of the translation task (`config.json`'s `task`)."""
  return run.config.get('task') == TASK


def direction(group: Group) -> Tuple[str, str]:
  """(source language, target language) of the group's data, '?' where unset."""
  data = group.runs[0].config.get('data') or {}
  return str(data.get('source_lang') or '?'), str(data.get('target_lang') or '?')


def group_name(group: Group) -> str:
  """'Translation de→en, PS-KD (on LS)': the group's direction and row label."""
  method = method_name(group.runs[0].config)
  return f'Translation {"→".join(direction(group))}, {ROW_LABELS.get(method, method)}'


def _order(values, known):
  return sorted(values, key=lambda v: (known.index(v) if v in known else len(known), v))


def translation_table(groups: Sequence[Group]) -> str:
  """The markdown table over the translation `groups` ('' when none has a BLEU number)."""
  cells: Dict[Tuple[str, Tuple[str, str]], List[Group]] = collections.defaultdict(list)
  for g in groups:
    if g.values('test/bleu'):
      cells[(method_name(g.runs[0].config), direction(g))].append(g)
  if not cells:
    return ''
  methods = _order({m for m, _ in cells}, ROW_ORDER)
  directions = _order({d for _, d in cells}, DIRECTION_ORDER)
  columns = ['Method']
  for source, target in directions:
    columns += [f'{source}→{target} {name}' for name, _ in METRICS]
    columns.append(f'{source}→{target} paper')
  rows = []
  for m in methods:
    row = [ROW_LABELS.get(m, m)]
    for d in directions:
      row += [cell(cells.get((m, d), []), key) for _, key in METRICS]
      paper = PAPER_BLEU.get((m, d))
      row.append(DASH if paper is None else f'{paper:.1f}')
    rows.append(row)
  per_direction = len(METRICS) + 1
  for i in range(len(directions)):
    for j in range(len(METRICS)):
      column = 1 + i * per_direction + j
      embolden(rows, [(r, column) for r in range(len(rows))])
  notes = [f'- {ROW_LABELS.get(m, m)} / {d[0]}→{d[1]}: {len(gs)} configurations (shown: the '
           'one with most seeds): ' + ', '.join(g.runs[0].workdir for g in gs)
           for (m, d), gs in sorted(cells.items()) if len(gs) > 1]
  return '\n'.join([markdown(columns, rows)] + notes)


def section(groups: Sequence[Group]) -> List[str]:
  """The report's lines for the translation runs (none when no group has a BLEU number)."""
  table = translation_table(groups)
  if not table:
    return []
  return ['## Translation: BLEU on the test split (PS-KD, IWSLT15)', '',
          f'Cells: {STD_NOTE}. sacreBLEU: detokenised, `test/bleu`; tok. BLEU: whitespace '
          'tokens, `test/bleu_tok` (fairseq\'s `--remove-bpe` figure, the kind the paper '
          'reports); paper: seed 003\'s abstract (PS-KD only; its baselines are not in the '
          'stored text).', '', table, '']

