"""Strict JSON (RFC 8259) for every file a run writes: `summary.json`, `metrics.jsonl`,
`evals/<name>/results.json` and the record beside each checkpoint.

One convention: a non-finite number (NaN, +inf, -inf) is written as `null`, since strict JSON
has no NaN or Infinity. Readers take null for a missing number: the reports print `n/a` or
the dash, pandas reads NaN, jq sees null, and `number` reads it back as NaN. Writers go through
`dumps`, which refuses (ValueError) a non-finite float that slipped past `jsonable`.

Where a reader needs to know which non-finite value it was (a resumed run's log window, in the
checkpoint record), `kinds` names them ('nan', 'inf', '-inf') beside the values and `number`
gives them back exactly.
"""
import json
import math
from typing import Any, Dict, Mapping, Optional

import jax
import numpy as np


def jsonable(value: Any) -> Any:
  """Plain JSON types: NumPy/JAX scalars and arrays unpacked, tuples as lists, NaN/inf as
  None."""
  if isinstance(value, jax.Array):
    value = np.asarray(value)
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


def dumps(value: Any, **kwargs) -> str:
  """`value` as strict JSON text (`jsonable` first; `json.dumps` keyword arguments pass)."""
  return json.dumps(jsonable(value), allow_nan=False, **kwargs)


def _refuse(token: str):
  raise ValueError(f'{token} is not strict JSON (a non-finite number is written as null)')


def loads(text: str) -> Any:
  """The strict JSON in `text`; ValueError on NaN, Infinity or -Infinity tokens."""
  return json.loads(text, parse_constant=_refuse)


def kinds(values: Mapping[str, Any]) -> Dict[str, str]:
  """{key: 'nan' | 'inf' | '-inf'} for the non-finite numbers of `values` (written as null)."""
  return {k: str(float(v)) for k, v in values.items() if not math.isfinite(float(v))}


def number(value: Any, kind: Optional[str] = None) -> float:
  """A float read back: null is `kind` ('nan', 'inf' or '-inf' from `kinds`), NaN by default.
  A string ('nan', 'inf': what records written before this convention hold) is parsed."""
  return float(kind or 'nan') if value is None else float(value)
