"""`<workdir>/evals/report.md`: every evaluator's `results.json` as one readable page.

Sections follow `ORDER` (then any other evaluator by name). Each shows the evaluator's label
(what was measured and how), its tables (or its metrics when it has none), its plots and a link
to its `results.json`; links are relative, so the folder can be copied or viewed on GitHub.
Numbers print with 2 decimals (eval_spec.md §0.7); counts as integers.
"""
import datetime
import json
import os
from typing import Any, Dict, Optional

import jax

from sdd_jax.evaluators import results as results_lib

ORDER = ('accuracy', 'calibration', 'fgsm', 'corruption', 'odin')
REPORT_FILE = 'report.md'


def _cell(value: Any) -> str:
  if value is None:
    return 'n/a'
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    return f'{value:.2f}'
  if isinstance(value, (list, tuple)):
    return ', '.join(_cell(v) for v in value)
  return str(value).replace('|', '\\|').replace('\n', ' ')


def _table(columns, rows) -> str:
  lines = ['| ' + ' | '.join(_cell(c) for c in columns) + ' |',
           '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(_cell(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


def _metric_cell(key: str, value: Any) -> str:
  if isinstance(value, float) and (key.endswith(('/count', '/n_in', '/n_out'))
                                   or key.startswith('skipped/')):
    return str(int(value))
  return _cell(value)


def _section(name: str, record: Dict[str, Any]) -> str:
  parts = [f'## {name}']
  if record.get('skipped'):
    parts.append(f'**Skipped:** {record["skipped"]}')
    return '\n\n'.join(parts)
  if record.get('label'):
    parts.append(record['label'])
  for table in record.get('tables') or ():
    parts.append(f'**{table["title"]}**\n\n' + _table(table['columns'], table['rows']))
  if not record.get('tables'):
    metrics = record.get('metrics') or {}
    parts.append(_table(('key', 'value'), [(k, _metric_cell(k, v)) for k, v in metrics.items()]))
  for plot in record.get('plots') or ():
    parts.append(f'![{name}: {plot}]({name}/{plot})')
  parts.append(f'All numbers: [{name}/{results_lib.RESULTS_FILE}]'
               f'({name}/{results_lib.RESULTS_FILE}).')
  return '\n\n'.join(parts)


def read_all(workdir: str) -> Dict[str, dict]:
  """{evaluator name: its results.json record} for every `evals/<name>/results.json`."""
  root = os.path.join(workdir, 'evals')
  names = sorted(os.listdir(root)) if os.path.isdir(root) else []
  records = {}
  for name in sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
    record = results_lib.read_results(workdir, name)
    if record is not None:
      records[name] = record
  return records


def write_report(workdir: str, header: Optional[Dict[str, Any]] = None) -> str:
  """Writes `<workdir>/evals/report.md` from the results on disk; returns its path.

  `header`: extra `name: value` lines for the top (checkpoint step, model, data set ...).
  """
  records = read_all(workdir)
  lines = ['# Evaluation report', '',
           f'- workdir: `{os.path.abspath(workdir)}`',
           f'- written: {datetime.datetime.now().isoformat(timespec="seconds")}']
  lines += [f'- {key}: {_cell(value)}' for key, value in (header or {}).items()]
  constants = {json.dumps(r.get('normalisation'), sort_keys=True): r.get('normalisation')
               for r in records.values() if r.get('normalisation')}
  for norm in constants.values():
    lines.append('- normalisation `(x / 255 - mean) / std`: mean ({}), std ({})'.format(
        *(', '.join(f'{v:g}' for v in norm[k]) for k in ('mean', 'std'))))
  skipped = {name: r['skipped'] for name, r in records.items() if r.get('skipped')}
  skipped.update({f'{name}/{k}': v for name, r in records.items()
                  for k, v in ((r.get('details') or {}).get('skipped_sets') or {}).items()})
  if skipped:
    lines.append('- skipped: ' + ', '.join(skipped))
  text = '\n'.join(lines) + '\n\n' + '\n\n'.join(
      _section(name, record) for name, record in records.items()) + '\n'
  path = os.path.join(workdir, 'evals', REPORT_FILE)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
      f.write(text)
  return path
