"""`<workdir>/evals/<name>/results.json`: every number of one evaluator, readable without code.

One record per evaluator (eval_spec.md §0.7, §8.3):

    {"evaluator": name, "label": what was measured and how (the variant, the protocol),
     "metrics": {"<section>/<name>": float, ...}   (the values the evaluator returned),
     "normalisation": {"mean": [...], "std": [...]}  (the constants the inputs went through),
     "details": {...}   (per-bin tables, per-set n, ε lists: whatever recomputes the aggregates),
     "tables": [{"title", "columns", "rows"}]   (what `report.py` prints),
     "plots": ["reliability.png", ...]   (files next to the JSON),
     "skipped": null or the one-line reason}

Only process 0 writes. NaN and inf become null, so the file is strict JSON.
"""
import json
import logging
import math
import os
from typing import Any, Dict, Optional, Sequence

import jax
import numpy as np

RESULTS_FILE = 'results.json'


def normalisation(data_config) -> Dict[str, Any]:
  """The per-channel constants of `(x / 255 - mean) / std` (eval_spec §0.3: always recorded)."""
  return {'mean': [float(m) for m in data_config.mean],
          'std': [float(s) for s in data_config.std],
          'pixels': 'uint8 / 255 in [0, 1]'}


def jsonable(value: Any) -> Any:
  """Plain JSON types: NumPy scalars and arrays unpacked, tuples as lists, NaN/inf as None."""
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return jsonable(value.tolist())
  if isinstance(value, (np.bool_, bool)):
    return bool(value)
  if isinstance(value, (np.integer, int)):
    return int(value)
  if isinstance(value, (np.floating, float)):
    value = float(value)
    return value if math.isfinite(value) else None
  return value


def results_path(workdir: str, name: str) -> str:
  return os.path.join(workdir, 'evals', name, RESULTS_FILE)


def read_results(workdir: str, name: str) -> Optional[dict]:
  path = results_path(workdir, name)
  if not os.path.isfile(path):
    return None
  try:  # a damaged record (a kill mid-write by hand, a truncated copy) is written again
    with open(path, encoding='utf-8') as f:
      record = json.load(f)
  except ValueError:
    logging.warning('%s cannot be read; it will be written again', path)
    return None
  return record if isinstance(record, dict) else None


def write_results(workdir: str, name: str, *, data_config, metrics: Dict[str, float],
                  label: str = '', details: Optional[dict] = None,
                  tables: Sequence[dict] = (), plots: Sequence[str] = (),
                  skipped: Optional[str] = None) -> str:
  """Writes (replaces) the record of evaluator `name`; returns its path."""
  path = results_path(workdir, name)
  record = {'evaluator': name, 'label': label, 'metrics': metrics,
            'normalisation': normalisation(data_config), 'details': details or {},
            'tables': list(tables), 'plots': list(plots), 'skipped': skipped}
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
      json.dump(jsonable(record), f, indent=2)
    os.replace(path + '.tmp', path)
  return path


def merge_metrics(workdir: str, name: str, *, data_config, metrics: Dict[str, float],
                  skipped: Optional[str] = None) -> str:
  """Sets `metrics` (and `skipped`) in the record of `name`, keeping what the evaluator wrote
  there itself (details, tables, plots); creates the record for evaluators that write none."""
  record = read_results(workdir, name) or {}
  if skipped:  # a skipped run leaves no numbers of its own; older ones would mislead
    record = {}
  return write_results(workdir, name, data_config=data_config, metrics=metrics,
                       label=record.get('label', ''), details=record.get('details'),
                       tables=record.get('tables', ()), plots=record.get('plots', ()),
                       skipped=skipped)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict:
  """A table for the report: `rows` of cells (numbers are printed with 2 decimals)."""
  return {'title': title, 'columns': list(columns), 'rows': [list(row) for row in rows]}
