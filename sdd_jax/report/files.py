"""A run's files as the report (`python -m sdd_jax.report`) reads them, and what it does with a
fault: the report goes on with the other runs and says, in one line on stderr, what it left out.

| file | missing | unreadable (truncated, not JSON or UTF-8, wrong JSON type) |
|---|---|---|
| `config.json` | not a run; a folder that holds `summary.json`, `metrics.jsonl` or `checkpoints/` is named | run skipped, named |
| `summary.json` | tabulated without its numbers (a run in progress) | run skipped, named |
| `evals/<name>/results.json` | tabulated without that evaluator | run skipped, named |
| `metrics.jsonl` | no probe rows (Table 8, Figure 4) | only the bad lines are skipped (a kill truncates the last one); one line per file |

A line of `metrics.jsonl` is bad when it is not a JSON object with a numeric `step`, or when one
of its `probe/...` values is neither a number nor null. A null value (how a run writes NaN and
±inf: `workdir/jsonio.py`) reads back as NaN. Every message names the file (so the run) and
what is wrong with it.
"""
import json
from typing import Any, Dict, List, Optional, Tuple

from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError

# Sections that must be JSON objects (or absent) in each kind of file.
CONFIG_OBJECTS = ('data', 'model', 'methods', 'optim', 'evals')
RESULTS_TYPES = {'metrics': dict, 'details': dict, 'tables': list, 'plots': list}
# Files that make a folder without config.json look like a workdir that lost it.
WORKDIR_TRACES = ('summary.json', 'metrics.jsonl', 'checkpoints')


class RunFileError(UserError):
  """A file of a run that the report cannot read: `<path>: <what is wrong>`."""


def _json_type(value: Any) -> str:
  return {dict: 'object', list: 'array', str: 'string', bool: 'boolean',
          type(None): 'null'}.get(type(value), 'number')


def _first_line(error: Exception) -> str:
  text = str(error).splitlines()
  return f'{type(error).__name__}: {text[0]}' if text else type(error).__name__


def read_object(path: str) -> Optional[Dict[str, Any]]:
  """The JSON object in `path`, None when there is no such file; `RunFileError` otherwise."""
  target = workdir_path.path(path)
  if not target.exists():
    return None
  try:
    value = json.loads(target.read_bytes().decode('utf-8'))
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise RunFileError(f'{path}: unreadable ({_first_line(e)})') from None
  if not isinstance(value, dict):
    raise RunFileError(f'{path}: a JSON {_json_type(value)}, not an object')
  return value


def check_types(path: str, record: Dict[str, Any], types: Dict[str, type]) -> None:
  """Each `key` of `types` present in `record` (and not null) has that JSON type."""
  for key, kind in types.items():
    if record.get(key) is not None and not isinstance(record[key], kind):
      raise RunFileError(f'{path}: "{key}" is a JSON {_json_type(record[key])}, not '
                         f'{"an object" if kind is dict else "an array"}')


def check_config(path: str, config: Dict[str, Any]) -> None:
  check_types(path, config, {key: dict for key in CONFIG_OBJECTS})
  for name, section in (config.get('methods') or {}).items():
    if not isinstance(section, dict):
      raise RunFileError(f'{path}: "methods.{name}" is a JSON {_json_type(section)}, not an '
                         'object')


def check_summary(path: str, summary: Dict[str, Any]) -> None:
  for key in ('steps', 'epochs'):  # the probe table computes with them
    value = summary.get(key)
    if value is not None and _json_type(value) != 'number':
      raise RunFileError(f'{path}: "{key}" is a JSON {_json_type(value)}, not a number')


def _line_problem(record: Any) -> Optional[str]:
  if not isinstance(record, dict):
    return f'a JSON {_json_type(record)}, not an object'
  if _json_type(record.get('step')) != 'number':
    return 'no numeric "step"'
  for key, value in record.items():
    if key.startswith('probe/') and _json_type(value) not in ('number', 'null'):
      return f'"{key}" is a JSON {_json_type(value)}, not a number'
  return None


def read_lines(path: str) -> Tuple[List[Dict[str, Any]], Optional[str]]:
  """The good records of a JSON-lines file ([] when missing) and, when some lines were bad,
  one message: `<path>: skipped N unreadable line(s) (line k: <what>)`, naming the first."""
  target = workdir_path.path(path)
  if not target.exists():
    return [], None
  records, bad, total = [], [], 0
  try:
    lines = target.read_bytes().split(b'\n')
  except OSError as e:
    return [], f'{path}: unreadable ({_first_line(e)})'
  for number, raw in enumerate(lines, 1):
    if not raw.strip():
      continue
    total += 1
    try:
      record = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as e:
      bad.append((number, f'not JSON ({_first_line(e)})'))
      continue
    problem = _line_problem(record)
    if problem:
      bad.append((number, problem))
    else:
      records.append({k: jsonio.number(v) if v is None else v for k, v in record.items()})
  if not bad:
    return records, None
  number, problem = bad[0]
  plural = 's' if len(bad) > 1 else ''
  return records, (f'skipped {len(bad)} unreadable line{plural} of {total} in {path} '
                   f'(line {number}: {problem})')


def find_workdirs(directory: str, problems: Optional[List[str]] = None) -> List[str]:
  """`directory` itself if it holds `config.json`, else every such folder below it (sorted). A
  folder with traces of a run (`WORKDIR_TRACES`) but no config.json is named in `problems`."""
  if workdir_path.path(directory).joinpath('config.json').is_file():
    return [directory]
  found = []
  for root, dirs, files in workdir_path.walk(directory):
    names = set(files) | set(dirs)
    traces = [name for name in WORKDIR_TRACES if name in names]
    if 'config.json' not in names and traces and problems is not None:
      problems.append(f'skipped {root}: no config.json (it holds {", ".join(traces)})')
    dirs[:] = sorted(d for d in dirs if d not in ('checkpoints', 'tensorboard', 'evals'))
    if 'config.json' in files:
      found.append(root)
      dirs[:] = []
  return sorted(found)
