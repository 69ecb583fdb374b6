"""Evaluating a finished (or still training) workdir: what `evaluate.py` runs.

`evaluate_workdir` hands the workdir to its task's evaluation (`sdd_jax.tasks`); for
classification (this module's `evaluate`):

1. read `<workdir>/config.json` (written by the trainer), lists back to tuples;
2. set `config.evals` to every registered evaluator's section and every section the workdir
   has (`evals.<key>`, typed: `evaluators/sections.py`), each from its evaluator's defaults,
   updated by the workdir's own values, then by the command-line overrides; validate;
3. rebuild the model (`models/build.py`) and restore the newest checkpoint's variables
   (`params`, `batch_stats`), replicated over this process's mesh whatever mesh wrote them
   (any device count); a checkpoint of another model is refused, naming what differs;
4. run the chosen sections with the one evaluation runner training uses
   (`evaluators/runner.py`: one prediction pass per predictor and split, DML's network 1 and
   ensemble beside the plain network; a missing data set is skipped with its one-line reason),
   record every metric in `<workdir>/evals/<key>/results.json`, and write
   `<workdir>/evals/report.md`.
"""
import dataclasses
import logging
from typing import Any, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax.config import cli as config_cli
from sdd_jax.config import validation as config_validation
from sdd_jax import data as data_lib
from sdd_jax import evaluators as evaluators_lib
from sdd_jax.classification import init_from as init_from_lib
from sdd_jax import methods as methods_lib
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax import tasks
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.evaluators import report as report_lib
from sdd_jax.evaluators import runner as runner_lib
from sdd_jax.evaluators import sections as sections_lib
from sdd_jax.models import build as models_build
from sdd_jax.errors import UserError


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


def evals_template() -> ml_collections.ConfigDict:
  """What `--config.*` may override: `eval_batch_size` (0: the workdir's) and every
  registered evaluator's section, with its defaults."""
  return ml_collections.ConfigDict({
      'eval_batch_size': 0,
      'evals': {name: dict(evaluators_lib.EVALUATORS.get(name).defaults)
                for name in evaluators_lib.EVALUATORS.names()}})


def merge_evals(config: ml_collections.ConfigDict, overrides: Optional[Dict[str, Any]] = None,
                names: Optional[Sequence[str]] = None) -> ml_collections.ConfigDict:
  """`config` with `evals` = defaults <- the workdir's sections <- `overrides` for `names`
  (default: every registered evaluator and every section of the workdir). A name is a
  section key: a registered evaluator's name or a key of the workdir's `config.evals`; its
  defaults are those of its `type`. `overrides`: {'evals.odin.sets': (...), ...} and/or
  {'eval_batch_size': 100}."""
  overrides = dict(overrides or {})
  saved = config.evals.to_dict() if 'evals' in config else {}
  registered = evaluators_lib.EVALUATORS.names()
  known = list(registered) + sorted(set(saved) - set(registered))
  names = list(names or known)
  for name in names:
    if name not in known:
      raise EvaluationError(f'--evals: unknown evaluator {name!r}; known: {", ".join(known)}')
  evals = {}
  for name in names:
    kind = sections_lib.section_type(name, saved.get(name, {}))
    section = dict(evaluators_lib.EVALUATORS.get(kind).defaults) if kind in registered else {}
    section.update(saved.get(name, {}))
    evals[name] = section
  for key, value in overrides.items():
    parts = key.split('.')
    if parts[0] == 'evals' and len(parts) == 3 and parts[1] in evals:
      evals[parts[1]][parts[2]] = value
    elif parts[0] == 'evals' and len(parts) == 3:
      continue  # an override of an evaluator that is not run
    elif key == 'eval_batch_size':
      pass
    else:
      raise EvaluationError(f'--config.{key}: only --config.evals.<name>.<field> and '
                            '--config.eval_batch_size can change at evaluation')
  config = ml_collections.ConfigDict(config.to_dict())
  config.evals = ml_collections.ConfigDict(evals)
  if overrides.get('eval_batch_size'):
    config.eval_batch_size = int(overrides['eval_batch_size'])
  return config


def restore_checkpoint_variables(config, workdir: str, mesh, model=None):
  """-> (the variables of the newest readable checkpoint, the whole tree (DML's two networks,
  BYOT's auxiliary heads), step), replicated over `mesh`.

  Only `params` and `batch_stats` are read, each array placed straight onto `mesh` (not onto
  the devices that saved it), so evaluation needs neither the optimizer nor the methods' own
  state (PS-KD's table, sized by the training set) and any device count evaluates a
  checkpoint written by any other. `model` (classification's, of `config`): a checkpoint
  whose arrays differ from the ones it builds is refused, naming the first difference.
  """
  directory = workdir_path.path(workdir) / 'checkpoints'
  if not directory.is_dir() or not any(directory.iterdir()):
    raise EvaluationError(f'no checkpoint in {directory}; train first (train.py --workdir '
                          f'{workdir})')
  expected = None if model is None else _abstract_variables(config, model)
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.max_to_keep, read_only=True)
  try:
    restored, step = checkpointer.restore_variables(parallel.replicated_sharding(mesh),
                                                    expected)
  finally:
    checkpointer.close()
  if restored is None:
    raise EvaluationError(f'no checkpoint in {directory}; train first')
  return {'params': restored['params'], 'batch_stats': restored.get('batch_stats', {})}, step


def _abstract_variables(config, model) -> Dict[str, Any]:
  """{'params', 'batch_stats'} of `config`'s network as the trainer initialises them (through
  the methods: DML's two networks, BYOT's heads), as shapes only: nothing is computed."""
  image_shape = (config.data.image_size, config.data.image_size, len(config.data.mean))
  methods = methods_lib.create_methods(config.methods)
  variables = jax.eval_shape(
      lambda key: methods_lib.init_variables(methods, model, key,
                                             jnp.zeros((1, *image_shape), jnp.float32)),
      state_lib.init_key(config.seed))
  return {c: variables.get(c, {}) for c in ('params', 'batch_stats')}


def restore_variables(config, workdir: str, mesh):
  """-> (variables of the plain network, step): `restore_checkpoint_variables` through the
  methods' `inference_variables` (e.g. without BYOT's auxiliary heads, DML's network 0)."""
  variables, step = restore_checkpoint_variables(config, workdir, mesh)
  methods = methods_lib.create_methods(config.methods)
  return methods_lib.inference_variables(methods, variables), step


def _data_name(data_config) -> str:
  if data_config.source == 'tfds':
    return f'tfds {data_config.name}'
  return f'{data_config.source} {data_config.path}'.strip()


def _experiment_config(workdir: str, experiment: str,
                       init_from: Optional[str]) -> ml_collections.ConfigDict:
  """The config file `experiment`'s config (with `init_from`), validated and checked against
  what `workdir` holds (another config's run is refused). Reads only: it is recorded as the
  workdir's config.json (`_record`) once every other check has passed."""
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
  workdir_lib.check_config(workdir, config)
  return config


def _record(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Claims `workdir` for `config` (writes config.json, as train.py would) and lets it go."""
  with workdir_lib.Claim(workdir, config):
    pass


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
                     experiment: Optional[str] = None) -> Outcome:
  """Evaluates `workdir` with its task's evaluation (`tasks.TASKS`, by the workdir's
  `config.task`; absent = classification: `evaluate` below; 'translation':
  `sdd_jax.translation.evaluation.evaluate`).

  Classification only: `init_from` (a safetensors file in torchvision's layout: `python -m
  sdd_jax.export`, or a torchvision state_dict saved with safetensors) evaluates those weights
  instead of the newest checkpoint (step 0 in the report); `experiment`
  (`configs/<file>.py[:arg]`) gives the config of a workdir that has none yet, recorded as its
  config.json (e.g. torchvision's ImageNet weights evaluated with
  `configs/imagenet_resnet152_sdd.py:ce`'s data and evaluators) once every check has passed:
  a refused evaluation creates and changes nothing.
  """
  if experiment:
    config = _experiment_config(workdir, experiment, init_from)
    if not init_from:
      _check_has_checkpoint(workdir, experiment)
  else:
    config = load_config(workdir)
  _check_init_from_task(workdir, config, init_from)
  task = tasks.task_of(config)
  if task is tasks.TASKS.get(tasks.DEFAULT):
    return evaluate(workdir, config, overrides, names, init_from=init_from,
                    record=config if experiment else None)
  if experiment:
    _record(workdir, config)
  return task.evaluate(workdir, config, overrides, names)


def evaluate(workdir: str, config: ml_collections.ConfigDict,
             overrides: Optional[Dict[str, Any]] = None,
             names: Optional[Sequence[str]] = None, init_from: Optional[str] = None,
             record: Optional[ml_collections.ConfigDict] = None) -> Outcome:
  """Classification: runs the sections `names` (default: all) on the newest checkpoint of
  `workdir`, whose config is `config` (or on the weights of the file `init_from`). `record`:
  a config to write as the workdir's config.json after every check (the sections, the data,
  the weights) has passed, before the first evaluator runs."""
  config = merge_evals(config, overrides, names)
  if init_from:
    config.model.init_from = init_from
  config_validation.validate(config)
  mesh = parallel.create_mesh()  # any device count: eval batches are padded to split over it
  eval_source = data_lib.create_source(config.data, config.data.eval_split)
  model = models_build.create_model(config)
  if init_from:
    init_from_lib.check(config, where=f'--init_from {init_from}')
    variables = init_from_lib.load(config, model, where=f'--init_from {init_from}')
    variables, step = parallel.replicate(variables, mesh), 0
    logging.info('evaluating %s with the weights of %s', workdir, init_from)
  else:
    variables, step = restore_checkpoint_variables(config, workdir, mesh, model)
    logging.info('evaluating %s at step %d', workdir, step)
  if record is not None:
    _record(workdir, record)
  runner = runner_lib.Runner(config, model, mesh, workdir,
                             methods_lib.create_methods(config.methods),
                             sources={config.data.eval_split: eval_source})
  outcome = runner(variables)
  header = {'checkpoint step': step, 'model': config.model.name,
            **({'weights': init_from} if init_from else {}),
            'data': f'{_data_name(config.data)} split {config.data.eval_split!r} '
                    f'({len(eval_source)} examples)',
            'evaluators': ', '.join(runner.runs)}
  path = report_lib.write_report(workdir, header)
  return Outcome(metrics=outcome.metrics, skipped=outcome.skipped, step=step, report=path)
