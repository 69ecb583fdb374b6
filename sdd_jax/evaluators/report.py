"""`<workdir>/evals/report.md`: every evaluator's `results.json` as one readable page.

Sections follow `ORDER` (then any other evaluator by name). Each shows the evaluator's label
(what was measured and how), its tables (or its metrics when it has none), its plots and a link
to its `results.json`; links are relative, so the folder can be copied or viewed on GitHub.
Numbers print with 2 decimals (docs/evaluation.md §0.7); counts as integers; a null number (NaN or
inf when measured) as n/a. When any evaluator saw NaN or ±inf logits, one WARNING line at the
top says how many (they were counted as wrong); an unreadable results.json is named there too.
"""
import datetime
import json
import os
from typing import Any, Dict, Optional

import jax

from sdd_jax.workdir import paths as workdir_path
from sdd_jax.evaluators import results as results_lib
from sdd_jax.report import cells

ORDER = ('accuracy', 'calibration', 'temperature', 'fgsm', 'corruption', 'odin')
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


def _is_count(key: str) -> bool:
  return (key.endswith(('/count', '/n_in', '/n_out')) or key.startswith('skipped/')
          or key.rsplit('/', 1)[-1].startswith('nonfinite'))


def _metric_cell(key: str, value: Any) -> str:
  if isinstance(value, float) and _is_count(key):
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
    parts.append(f'**{table["title"]}**\n\n' +
                 cells.markdown_table(table['columns'], table['rows'], _cell))
  if not record.get('tables'):
    metrics = record.get('metrics') or {}
    parts.append(cells.markdown_table(('key', 'value'),
                                      [(k, _metric_cell(k, v)) for k, v in metrics.items()], _cell))
  for plot in record.get('plots') or ():
    parts.append(f'![{name}: {plot}]({name}/{plot})')
  parts.append(f'All numbers: [{name}/{results_lib.RESULTS_FILE}]'
               f'({name}/{results_lib.RESULTS_FILE}).')
  return '\n\n'.join(parts)


def read_all(workdir: str, unreadable: Optional[Dict[str, str]] = None) -> Dict[str, dict]:
  """{evaluator name: its results.json record} for every `evals/<name>/results.json`; an
  unreadable one is left out (and its reason put in `unreadable`, when given)."""
  root = workdir_path.path(workdir) / 'evals'
  names = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
  records = {}
  for name in sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
    try:
      record = results_lib.read_results(workdir, name)
    except results_lib.ResultsError as e:
      if unreadable is not None:
        unreadable[name] = str(e)
      continue
    if record is not None:
      records[name] = record
  return records


def _number(value: Any) -> float:
  return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def nonfinite_warning(records: Dict[str, dict]) -> Optional[str]:
  """One line when any evaluator counted examples with NaN or ±inf logits, else None: 'N of M
  test examples' from the accuracy evaluator (`<prefix>/nonfinite` of `<prefix>/count`), then
  every other non-zero `.../nonfinite*` count."""
  found = []
  for record in records.values():
    metrics = record.get('metrics') or {}
    for key, value in metrics.items():
      if key.rsplit('/', 1)[-1].startswith('nonfinite') and _number(value) > 0:
        section = key.rsplit('/', 1)[0]
        total = metrics.get(f'{section}/count', metrics.get(f'{section}/n_in'))
        found.append((key, int(_number(value)), int(_number(total)) if total else None))
  if not found:
    return None
  first = next((f for f in found if f[0].endswith('/nonfinite') and f[2] is not None), None)
  head = (f'{first[1]} of {first[2]} {first[0].split("/")[0]} examples' if first
          else 'some examples')
  others = ', '.join(f'{key} {n}' + (f' of {total}' if total is not None else '')
                     for key, n, total in found if (key, n, total) != first)
  return (f'**WARNING: {head} had non-finite logits (NaN or inf), counted as wrong**'
          + (f'; {"also" if first else "counts"}: {others}' if others else ''))


def write_report(workdir: str, header: Optional[Dict[str, Any]] = None) -> str:
  """Writes `<workdir>/evals/report.md` from the results on disk; returns its path.

  `header`: extra `name: value` lines for the top (checkpoint step, model, data set ...).
  """
  unreadable: Dict[str, str] = {}
  records = read_all(workdir, unreadable)
  warning = nonfinite_warning(records)
  lines = ['# Evaluation report', ''] + ([warning, ''] if warning else []) + [
           f'- workdir: `{workdir_path.path(workdir)}`',
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
  for name, reason in unreadable.items():
    lines.append(f'- unreadable, left out: {name}: {_cell(reason)}')
  text = '\n'.join(lines) + '\n\n' + '\n\n'.join(
      _section(name, record) for name, record in records.items()) + '\n'
  path = os.path.join(workdir, 'evals', REPORT_FILE)
  if jax.process_index() == 0 and not workdir_path.is_local(path):  # an object: written whole
    workdir_path.path(path).parent.mkdir(parents=True, exist_ok=True)
    workdir_path.path(path).write_text(text)
  elif jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'  # whole or not at all, like results.json
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
    os.replace(tmp, path)
  return path
