"""Evaluating a finished (or still training) workdir: what `evaluate.py` runs.

`evaluate_workdir` hands the workdir to its task's evaluation (`sdd_jax.tasks`: classification's
`classification/evaluation.py`, translation's `translation/evaluation.py`); the shared pieces
(the workdir's config, its checkpoint's variables, `EvaluationError`, `Outcome`) are in
`workdir/restore.py`.
"""
from typing import Any, Dict, List, Optional, Sequence

import ml_collections

from sdd_jax import evaluators as evaluators_lib
from sdd_jax import methods as methods_lib
from sdd_jax import tasks
from sdd_jax.config import cli as config_cli
from sdd_jax.config import validation as config_validation
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.workdir import restore as restore_lib
from sdd_jax.workdir.restore import EvaluationError, Outcome, load_config

MAX_INTERVAL_S = 600.0  # the longest poll interval of --follow


def evals_template() -> ml_collections.ConfigDict:
  """What `--config.*` may override: `eval_batch_size` (0: the workdir's) and every
  registered evaluator's section, with its defaults."""
  return ml_collections.ConfigDict({
      'eval_batch_size': 0,
      'evals': {name: dict(evaluators_lib.EVALUATORS.get(name).defaults)
                for name in evaluators_lib.EVALUATORS.names()}})


def _experiment_config(workdir: str, experiment: str,
                       init_from: Optional[str]) -> ml_collections.ConfigDict:
  """The config file `experiment`'s config (with `init_from`), validated and checked against
  what `workdir` holds (another config's run is refused). Reads only: it is recorded as the
  workdir's config.json (`restore_lib.record_config`) once every other check has passed."""
  config = config_cli.load_file(experiment)
  if tasks.task_of(config) is not tasks.TASKS.get(tasks.DEFAULT):  # nothing to record: refuse
    what = ("--init_from: weights in torchvision's layout are image networks" if init_from else
            '--experiment: only image configs evaluate weights from elsewhere')
    raise EvaluationError(
        f'{what}; {experiment} is a {config.task} config: leave out --experiment'
        f'{" and --init_from" if init_from else ""} and evaluate a trained {config.task} workdir '
        f'(python evaluate.py --workdir DIR, DIR the train.py --workdir)')
  if init_from:
    with config.unlocked():
      config.model.init_from = init_from
  config_validation.validate(config)
  workdir_lib.check_config(workdir, config, resolve=methods_lib.resolve_config)
  return config


def _check_init_from_task(workdir: str, config, init_from: Optional[str]) -> None:
  if init_from and tasks.task_of(config) is not tasks.TASKS.get(tasks.DEFAULT):
    raise EvaluationError(f'--init_from: weights in torchvision\'s layout are image networks; '
                          f'{workdir} is a {config.task} run: leave --init_from out')


def _check_has_checkpoint(workdir: str, experiment: str) -> None:
  directory = workdir_path.path(workdir) / 'checkpoints'
  if not directory.is_dir() or not any(directory.iterdir()):
    raise EvaluationError(f'no checkpoint in {directory}; train first (train.py --config '
                          f'{experiment} --workdir {workdir}) or give --init_from')


def evaluate_workdir(workdir: str, overrides: Optional[Dict[str, Any]] = None,
                     names: Optional[Sequence[str]] = None, *, init_from: Optional[str] = None,
                     experiment: Optional[str] = None, step: Optional[int] = None) -> Outcome:
  """Evaluates `workdir` with its task's evaluation (`tasks.TASKS`, by the workdir's
  `config.task`; absent = classification: `sdd_jax.classification.evaluation.evaluate`;
  'translation': `sdd_jax.translation.evaluation.evaluate`).

  Classification only: `init_from` (a safetensors file in torchvision's layout: `python -m
  sdd_jax.export`, or a torchvision state_dict saved with safetensors) evaluates those weights
  instead of the newest checkpoint (step 0 in the report); `experiment`
  (`configs/<file>.py[:arg]`) gives the config of a workdir that has none yet, recorded as its
  config.json (e.g. torchvision's ImageNet weights evaluated with
  `configs/imagenet_resnet152_sdd.py:ce`'s data and evaluators) once every check has passed:
  a refused evaluation creates and changes nothing. `step` (classification, not with
  `init_from`): evaluate that checkpoint instead of the newest.
  """
  if step is not None and init_from:
    raise EvaluationError('--step: evaluates a checkpoint of the workdir; leave it out with '
                          '--init_from')
  if experiment:
    config = _experiment_config(workdir, experiment, init_from)
    if not init_from:
      _check_has_checkpoint(workdir, experiment)
  else:
    config = load_config(workdir)
  _check_init_from_task(workdir, config, init_from)
  task = tasks.task_of(config)
  if task is tasks.TASKS.get(tasks.DEFAULT):
    return task.evaluate(workdir, config, overrides, names, init_from=init_from,
                         record=config if experiment else None, step=step)
  if step is not None:
    raise EvaluationError(f'--step: {workdir} is a {config.task} run, evaluated at its newest '
                          'checkpoint only; leave --step out')
  if experiment:
    restore_lib.record_config(workdir, config)
  return task.evaluate(workdir, config, overrides, names)


def follow_workdir(workdir: str, overrides: Optional[Dict[str, Any]] = None,
                   names: Optional[Sequence[str]] = None, *, interval_s: float,
                   idle_s: float, out=print, given: Sequence[str] = ()) -> List[int]:
  """Evaluates each checkpoint of `workdir` once as its training writes them, until its
  `summary.json` appears and the last one is done (the task's follower: classification's
  `classification/follow.py`); returns the steps this call evaluated. Read-only towards the
  training: results go to `<workdir>/follow/`. `given`: the flags of evaluate.py given beside
  --follow that it cannot take (--step, --init_from, --experiment): refused."""
  if given:
    raise EvaluationError(f'--follow: evaluates the checkpoints of a training as they come; '
                          f'leave out {" and ".join(given)}')
  if not 0 < interval_s <= MAX_INTERVAL_S:
    raise EvaluationError(f'--follow_interval: must be in (0, {MAX_INTERVAL_S:g}] seconds, got '
                          f'{interval_s:g}')
  if not idle_s > 0:
    raise EvaluationError(f'--follow_idle: must be > 0 seconds, got {idle_s:g}')
  config = load_config(workdir)
  task = tasks.task_of(config)
  if not task.follower:
    raise EvaluationError(f'--follow: {workdir} is a {config.task} run, which has no follower; '
                          'evaluate it once training is done (leave --follow out)')
  return task.follow(workdir, config, overrides, names, interval_s=interval_s, idle_s=idle_s,
                     out=out)
