"""Classification's evaluation of a workdir (`evaluate`, the task's entry in `sdd_jax.tasks`,
which `sdd_jax.evaluation.evaluate_workdir` dispatches to):

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
import logging
from typing import Any, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from sdd_jax import data as data_lib
from sdd_jax import evaluators as evaluators_lib
from sdd_jax import methods as methods_lib
from sdd_jax import parallel
from sdd_jax.classification import init_from as init_from_lib
from sdd_jax.config import validation as config_validation
from sdd_jax.evaluators import report as report_lib
from sdd_jax.evaluators import runner as runner_lib
from sdd_jax.evaluators import sections as sections_lib
from sdd_jax.models import build as models_build
from sdd_jax.train import state as state_lib
from sdd_jax.workdir import restore as restore_lib
from sdd_jax.workdir.restore import EvaluationError, Outcome


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


def restore_checkpoint_variables(config, workdir: str, mesh, model=None, step=None):
  """-> (the variables of the newest readable checkpoint, the whole tree (DML's two networks,
  BYOT's auxiliary heads), step), replicated over `mesh` (`workdir/restore.py`). `model`
  (classification's, of `config`): a checkpoint whose arrays differ from the ones it builds
  is refused, naming the first difference. `step`: that checkpoint instead of the newest."""
  expected = None if model is None else _abstract_variables(config, model)
  return restore_lib.restore_checkpoint_variables(config, workdir, mesh, expected, step)


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


def evaluate(workdir: str, config: ml_collections.ConfigDict,
             overrides: Optional[Dict[str, Any]] = None,
             names: Optional[Sequence[str]] = None, init_from: Optional[str] = None,
             record: Optional[ml_collections.ConfigDict] = None,
             step: Optional[int] = None) -> Outcome:
  """Classification: runs the sections `names` (default: all) on the newest checkpoint of
  `workdir` (or checkpoint `step`), whose config is `config` (or on the weights of the file
  `init_from`). `record`:
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
    variables, step = restore_checkpoint_variables(config, workdir, mesh, model, step)
    logging.info('evaluating %s at step %d', workdir, step)
  if record is not None:
    restore_lib.record_config(workdir, record, resolve=methods_lib.resolve_config)
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
