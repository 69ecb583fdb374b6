"""`<workdir>/follow/`: what `evaluate.py --follow` writes beside a running training.

    follow/record.json                    {"steps": {"<step>": {"metrics": {...},
                                            "skipped": {...}, "note": "..."}}}
    follow/<step>/evals/<key>/results.json   each section's record at that checkpoint
    follow/<step>/evals/report.md            (laid out as a workdir's own `evals/`)
    follow/tensorboard/                   the metrics as TensorBoard scalars at their step

The record is the truth: a step is done once it is in `record.json`, which is written whole
after each step's results (a temporary file and a rename; an object write on `gs://`), so a
follower killed at any point and started again evaluates the steps that are not in it, and
none twice. A step whose checkpoint could not be read (removed by `max_to_keep` between the
listing and the read, or damaged) is recorded with its `note` and no metrics, and is not
tried again. The training's files are only read: no lock, lease or checkpoint is touched.
"""
from typing import Any, Dict, Optional

from sdd_jax.errors import UserError
from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path

FOLDER = 'follow'
RECORD_FILE = 'record.json'


class RecordError(UserError):
  """`follow/record.json` cannot be read."""


def step_workdir(workdir: str, step: int) -> str:
  """Where the results of checkpoint `step` go: its `evals/` is `follow/<step>/evals/`."""
  return workdir_path.join(workdir, FOLDER, str(int(step)))


def tensorboard_dir(workdir: str) -> str:
  return workdir_path.join(workdir, FOLDER, 'tensorboard')


def read(workdir: str) -> Dict[int, Dict[str, Any]]:
  """{step: its entry} of the steps already evaluated ({} before the first one)."""
  path = workdir_path.path(workdir_path.join(workdir, FOLDER, RECORD_FILE))
  if not path.exists():
    return {}
  try:
    record = jsonio.loads(path.read_text())
    return {int(step): dict(entry) for step, entry in record['steps'].items()}
  except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
    raise RecordError(f'{path} cannot be read ({type(e).__name__}); move it away to evaluate '
                      'every checkpoint again') from None


def write(workdir: str, steps: Dict[int, Dict[str, Any]]) -> None:
  """Writes the record of `steps` ({step: entry}) whole."""
  folder = workdir_path.path(workdir_path.join(workdir, FOLDER))
  folder.mkdir(parents=True, exist_ok=True)
  text = jsonio.dumps({'steps': {str(s): steps[s] for s in sorted(steps)}}, indent=1,
                      sort_keys=True)
  workdir_path.write_text(folder / RECORD_FILE, text)


def final_step(workdir: str) -> Optional[int]:
  """The last step of a finished training (its `summary.json`'s `steps`), None while it runs
  (no summary yet, or one not yet readable)."""
  path = workdir_path.path(workdir_path.join(workdir, 'summary.json'))
  try:
    summary = jsonio.loads(path.read_text())
  except (OSError, ValueError):
    return None
  steps = summary.get('steps') if isinstance(summary, dict) else None
  return steps if isinstance(steps, int) else None
