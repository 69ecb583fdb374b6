"""Per-seed values (`python -m sdd_jax.report --per_seed`): one row per run, grouped, with the
headline metrics each table averages, so that anyone can check a mean, a std or a bold.

Columns are the keys of `KEYS` that some run has (a run without one: –), 2 decimals.
"""
from typing import Callable, List, Sequence

from sdd_jax.report.cells import DASH, markdown_table
from sdd_jax.report.runs import Group, metric_keys

KEYS = ('test/top1', 'test/top5', 'test/nll', 'test/ece', 'calibration/ece', 'calibration/nll',
        'calibration/ece_adaptive', 'calibration/ece_classwise', 'calibration/brier',
        'calibration/aurc', 'calibration/eaurc', 'temperature/t_star', 'temperature/ece_after',
        'temperature/nll_after', 'test/bleu')


def table(groups: Sequence[Group], name: Callable[[Group], str]) -> str:
  """Rows (group `name`, seed) in the groups' order; '' without runs."""
  runs = [r for g in groups for r in g.runs]
  keys = [k for k in KEYS if metric_keys(runs, k)]
  rows = []
  for g in groups:
    for run in g.runs:
      values = [run.metric(k) for k in keys]
      rows.append([name(g), str(run.config.get('seed'))] + [
          DASH if v is None else f'{v:.2f}' for v in values])
  return markdown_table(['Group', 'seed'] + [f'`{k}`' for k in keys], rows) if rows else ''


def section(groups: Sequence[Group], name: Callable[[Group], str]) -> List[str]:
  text = table(groups, name)
  return ['## Per-seed values', '', text, ''] if text else []
