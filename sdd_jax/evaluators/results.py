"""`<workdir>/evals/<name>/results.json`: every number of one evaluator, readable without code.

One record per evaluator (docs/evaluation.md §0.7, §8.3):

    {"evaluator": name, "label": what was measured and how (the variant, the protocol),
     "metrics": {"<section>/<name>": float, ...}   (the values the evaluator returned),
     "normalisation": {"mean": [...], "std": [...]}  (the constants the inputs went through),
     "details": {...}   (per-bin tables, per-set n, ε lists: whatever recomputes the aggregates),
     "tables": [{"title", "columns", "rows"}]   (what `report.py` prints),
     "plots": ["reliability.png", ...]   (files next to the JSON),
     "skipped": null or the one-line reason}

Only process 0 writes, atomically (a temporary file in the same folder, then a rename). NaN
and ±inf become null and the file is strict JSON (no NaN/Infinity tokens: `workdir/jsonio.py`,
the convention of every file a run writes); every reader (the evaluation report,
`python -m sdd_jax.report`) treats a null number as missing. A record that
cannot be read raises `ResultsError` naming the file and the problem.
"""
import json
import logging
import os
from typing import Any, Dict, Optional, Sequence

import jax

from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError

RESULTS_FILE = 'results.json'


class ResultsError(UserError):
  """A results.json that is not a readable record (truncated, not JSON, not an object)."""


def normalisation(data_config) -> Dict[str, Any]:
  """Per-channel constants of `(x / 255 - mean) / std` (always kept, docs/evaluation.md §0.3)."""
  return {'mean': [float(m) for m in data_config.mean],
          'std': [float(s) for s in data_config.std],
          'pixels': 'uint8 / 255 in [0, 1]'}


def results_path(workdir: str, name: str) -> str:
  return os.path.join(workdir, 'evals', name, RESULTS_FILE)


def read_record(path: str) -> dict:
  """The record in `path`; raises `ResultsError` (one line: the path and what is wrong)."""
  try:
    record = json.loads(workdir_path.path(path).read_text())
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise ResultsError(f'{path}: unreadable ({type(e).__name__}: '
                       f'{str(e).splitlines()[0] if str(e) else "empty"})') from None
  if not isinstance(record, dict):
    raise ResultsError(f'{path}: a JSON {type(record).__name__}, not an object')
  for key, kind in (('metrics', dict), ('details', dict), ('tables', list), ('plots', list)):
    if record.get(key) is not None and not isinstance(record[key], kind):
      raise ResultsError(f'{path}: "{key}" is a JSON {type(record[key]).__name__}, not '
                         f'{"an object" if kind is dict else "a list"}')
  return record


def read_results(workdir: str, name: str) -> Optional[dict]:
  """The record of evaluator `name` (None when it has none); `ResultsError` when unreadable."""
  path = results_path(workdir, name)
  if not workdir_path.path(path).is_file():
    return None
  return read_record(path)


def write_results(workdir: str, name: str, *, data_config, metrics: Dict[str, float],
                  label: str = '', details: Optional[dict] = None,
                  tables: Sequence[dict] = (), plots: Sequence[str] = (),
                  skipped: Optional[str] = None) -> str:
  """Writes (replaces) the record of evaluator `name`; returns its path."""
  path = results_path(workdir, name)
  record = {'evaluator': name, 'label': label, 'metrics': metrics,
            'normalisation': normalisation(data_config), 'details': details or {},
            'tables': list(tables), 'plots': list(plots), 'skipped': skipped}
  if jax.process_index() == 0 and not workdir_path.is_local(path):  # an object: written whole
    target = workdir_path.path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(jsonio.dumps(record, indent=2))
  elif jax.process_index() == 0:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    text = jsonio.dumps(record, indent=2)
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
      with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
  return path


def merge_metrics(workdir: str, name: str, *, data_config, metrics: Dict[str, float],
                  skipped: Optional[str] = None) -> str:
  """Sets `metrics` (and `skipped`) in the record of `name`, keeping what the evaluator wrote
  there itself (details, tables, plots); creates the record for evaluators that write none."""
  try:
    record = read_results(workdir, name) or {}
  except ResultsError as e:  # e.g. truncated by a kill: this run's numbers replace it
    logging.warning('replacing an unreadable record: %s', e)
    record = {}
  if skipped:  # a skipped run leaves no numbers of its own; older ones would mislead
    record = {}
  return write_results(workdir, name, data_config=data_config, metrics=metrics,
                       label=record.get('label', ''), details=record.get('details'),
                       tables=record.get('tables', ()), plots=record.get('plots', ()),
                       skipped=skipped)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict:
  """A table for the report: `rows` of cells (numbers are printed with 2 decimals)."""
  return {'title': title, 'columns': list(columns), 'rows': [list(row) for row in rows]}
