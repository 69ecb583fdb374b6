"""Reading a workdir back for evaluation, whatever its task: its config (`load_config`) and
the variables of its newest checkpoint (`restore_checkpoint_variables`), the error that says
why a workdir cannot be evaluated (`EvaluationError`) and what an evaluation returns
(`Outcome`). Each task's evaluation (`sdd_jax.tasks`: `classification/evaluation.py`,
`translation/evaluation.py`) builds on these; `sdd_jax.evaluation` dispatches to them.
"""
import dataclasses
from typing import Any, Dict, Optional

import ml_collections

from sdd_jax import parallel
from sdd_jax.errors import UserError
from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.workdir import records as checkpoint_record


class EvaluationError(UserError):
  """The workdir cannot be evaluated (no config, no checkpoint); the message says why."""


@dataclasses.dataclass
class Outcome:
  metrics: Dict[str, float]  # every key the evaluators returned
  skipped: Dict[str, str]  # section key (or key/set) -> one-line reason
  step: int  # the checkpoint's step
  report: str  # path of report.md


def _tuples(value: Any) -> Any:
  """JSON lists -> tuples, recursively (the configs use tuples: shapes, mean/std, lists)."""
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with."""
  workdir_path.check_store(workdir, '--workdir')
  root = workdir_path.path(workdir)
  if not root.is_dir():
    raise EvaluationError(f'--workdir {workdir} is not a folder; give the --workdir of a '
                          'train.py run')
  path = root / 'config.json'
  if not path.is_file():
    raise EvaluationError(f'{path} not found; --workdir must be a folder written by train.py')
  return ml_collections.ConfigDict(_tuples(workdir_lib.read_config_json(path)))


def restore_checkpoint_variables(config, workdir: str, mesh,
                                 expected: Optional[Dict[str, Any]] = None,
                                 step: Optional[int] = None):
  """-> (the variables of the newest readable checkpoint, the whole tree (DML's two networks,
  BYOT's auxiliary heads), step), replicated over `mesh`.

  Only `params` and `batch_stats` are read, each array placed straight onto `mesh` (not onto
  the devices that saved it), so evaluation needs neither the optimizer nor the methods' own
  state (PS-KD's table, sized by the training set) and any device count evaluates a
  checkpoint written by any other. `expected` ({'params', 'batch_stats'} as shapes, e.g.
  classification's `_abstract_variables`): a checkpoint whose arrays differ is refused, naming
  the first difference. `step`: that checkpoint (one whose save finished), not the newest.
  """
  directory = workdir_path.path(workdir) / 'checkpoints'
  if not directory.is_dir() or not any(directory.iterdir()):
    raise EvaluationError(f'no checkpoint in {directory}; train first (train.py --workdir '
                          f'{workdir})')
  if step is not None and step not in checkpoint_record.recorded_steps(directory):
    raise EvaluationError(f'--step {step}: no finished checkpoint {step} in {directory}; it '
                          f'holds steps {checkpoint_record.recorded_steps(directory)}')
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.max_to_keep, read_only=True)
  try:
    restored, step = checkpointer.restore_variables(parallel.replicated_sharding(mesh),
                                                    expected, step=step)
  finally:
    checkpointer.close()
  if restored is None:
    raise EvaluationError(f'no checkpoint in {directory}; train first')
  return {'params': restored['params'], 'batch_stats': restored.get('batch_stats', {})}, step


def record_config(workdir: str, config: ml_collections.ConfigDict,
                  resolve: Optional[workdir_lib.Resolve] = None) -> None:
  """Claims `workdir` for `config` (writes config.json resolved by the task's `resolve`, as
  train.py would) and lets it go."""
  with workdir_lib.Claim(workdir, config, **({'resolve': resolve} if resolve else {})):
    pass
