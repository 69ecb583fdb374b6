"""train_and_evaluate(config, workdir): the only module that knows the order of things.

1. validate the config and open the data (no workdir is touched before both pass);
2. claim the workdir (a different config's run refuses), build model, optimizer and state;
3. restore the newest readable checkpoint, if any;
4. train, evaluating and checkpointing every so many epochs, stopping cleanly on SIGTERM;
5. write `summary.json`.
"""
import contextlib
import functools
import json
import logging
import os
import signal
import threading
import time
from typing import Dict, List, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from sdd_jax import checkpoint as checkpoint_lib
from sdd_jax import config_validation
from sdd_jax import data as data_lib
from sdd_jax import evaluators as evaluators_lib
from sdd_jax import methods as methods_lib
from sdd_jax import metric_writers
from sdd_jax import models as models_lib
from sdd_jax import optim
from sdd_jax import parallel
from sdd_jax import state as state_lib
from sdd_jax import step as step_lib

# Fields that may change between a run and its resumption (they do not change the training);
# a name ending in '.' covers the whole section.
RESUMABLE_FIELDS = ('log_every_steps', 'checkpoint_every_epochs', 'max_to_keep',
                    'data.prefetch', 'data.num_workers', 'evals.')


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


class WorkdirError(ValueError):
  """The workdir cannot be used for this config."""


def create_model(config: ml_collections.ConfigDict):
  return models_lib.get_model(config.model.name, num_classes=config.data.num_classes,
                              head_hidden=tuple(config.model.head_hidden),
                              dtype=jnp.dtype(config.model.dtype), **config.model.kwargs)


def _flatten(tree, prefix='') -> Dict[str, object]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _claim_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Creates the workdir and writes config.json, or checks that it holds this config's run."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir {workdir} is a file; give a directory path')
  path = os.path.join(workdir, 'config.json')
  current = json.loads(config.to_json())
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      saved = json.load(f)
    old, new = _flatten(saved), _flatten(current)
    differ = sorted(k for k in set(old) | set(new)
                    if old.get(k) != new.get(k) and not k.startswith(RESUMABLE_FIELDS)
                    and k not in RESUMABLE_FIELDS)
    if differ:
      shown = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in differ[:3])
      raise WorkdirError(f'--workdir {workdir} holds a run of a different config ({shown}); '
                         'use a new --workdir, or the same config to resume')
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
      json.dump(current, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)
  multihost_utils.sync_global_devices('sdd_jax workdir claimed')


@contextlib.contextmanager
def _sigterm_flag():
  """Yields `requested()`: True once SIGTERM arrived (on any process, in multi-host runs)."""
  event = threading.Event()
  previous = None
  if threading.current_thread() is threading.main_thread():
    previous = signal.signal(signal.SIGTERM, lambda *_: event.set())

  def requested() -> bool:
    if jax.process_count() == 1:
      return event.is_set()
    flags = multihost_utils.process_allgather(np.int32(event.is_set()))
    return bool(np.any(flags))

  try:
    yield requested
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)


class _PendingMetrics:
  """Step metrics kept on the device until a log point; checks the loss is finite."""

  def __init__(self):
    self._items: List[Tuple[int, dict]] = []
    self._time = time.time()

  def add(self, step: int, metrics: dict) -> None:
    self._items.append((step, metrics))

  def flush(self, batch_size: int) -> Dict[str, float]:
    """Means over the steps since the last flush; raises NonFiniteLossError naming the step."""
    if not self._items:
      return {}
    steps = [s for s, _ in self._items]
    values = jax.device_get([m for _, m in self._items])
    for step, m in zip(steps, values):
      if not np.isfinite(m['train/loss']):
        raise NonFiniteLossError(
            f'the training loss is {m["train/loss"]} at step {step}; the last good checkpoint '
            'is kept: lower config.optim.lr or a method weight, or use model.dtype=float32')
    now = time.time()
    means = {k: float(np.mean([m[k] for m in values])) for k in values[0]}
    means['train/images_per_sec'] = len(steps) * batch_size / max(now - self._time, 1e-9)
    self._items, self._time = [], now
    return means

  def restart_clock(self) -> None:
    """Excludes evaluation and checkpoint time from images/s."""
    self._time = time.time()


def make_evaluate(config, model, mesh, eval_source, workdir: str):
  """Returns `evaluate(state, epoch) -> metrics`: runs the evaluators of `config.evals` whose
  cadence includes `epoch` (all of them when `epoch` is None, i.e. after training). An
  evaluator whose data is missing is skipped with one logged line."""
  evaluators = evaluators_lib.create_evaluators(config.evals)
  logits_fn = step_lib.make_logits_fn(model, mesh)
  input_grad_fn = step_lib.make_input_grad_fn(model, mesh)
  ctx = evaluators_lib.EvalContext(data_config=config.data, batch_size=config.eval_batch_size,
                                   mesh=mesh, source=eval_source, workdir=workdir)

  def evaluate(state, epoch=None) -> Dict[str, float]:
    predict = evaluators_lib.Predictors(
        logits_fn=functools.partial(logits_fn, state.variables),
        input_grad_fn=functools.partial(input_grad_fn, state.variables))
    results = {}
    for name, evaluator in evaluators.items():
      if epoch is not None and not (evaluator.every_epochs and epoch % evaluator.every_epochs == 0):
        continue
      try:
        results.update(evaluator(ctx, predict))
      except evaluators_lib.Skipped as e:
        logging.warning('evaluator %s skipped: %s', name, e)
        results[f'skipped/{name}'] = 1.0
    return results

  return evaluate


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after_step: int = 0) -> Dict[str, float]:
  """Trains `config` in `workdir` (resuming from its newest checkpoint); returns the summary.

  `stop_after_step=k > 0` stops after step k exactly as SIGTERM would (checkpoint, return {}):
  for time-sliced jobs and for the resume tests.
  """
  start_time = time.time()
  config_validation.validate(config)
  mesh = parallel.create_mesh()
  config_validation.validate_for_devices(config, mesh.devices.size, jax.process_count())
  methods = methods_lib.create_methods(config.methods)
  train_source = data_lib.create_source(config.data, config.data.train_split)
  eval_source = data_lib.create_source(config.data, config.data.eval_split)
  loader = data_lib.TrainLoader(train_source, config.data, global_batch=config.batch_size,
                                seed=config.seed, process_index=jax.process_index(),
                                process_count=jax.process_count())
  steps_per_epoch = loader.steps_per_epoch
  if steps_per_epoch < 1:
    raise config_validation.ConfigError(
        f'config.batch_size: {config.batch_size} is larger than the {len(train_source)} '
        'training examples; lower it')
  total_steps = steps_per_epoch * config.num_epochs

  _claim_workdir(workdir, config)
  lr_schedule = optim.make_lr_schedule(config.optim, steps_per_epoch)
  tx = optim.make_optimizer(config.optim, lr_schedule)
  model = create_model(config)
  sample = jnp.zeros((1, *loader.batch(0)['images'].shape[1:]), jnp.float32)
  replicated = parallel.replicated_sharding(mesh)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx),
                  out_shardings=replicated)(state_lib.init_key(config.seed), sample)
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.max_to_keep)
  restored, restored_step = checkpointer.restore(state)
  if restored is not None:
    state = restored
    logging.info('resumed from the checkpoint at step %d', restored_step)
  start_step = int(jax.device_get(state.step))

  train_step = step_lib.make_train_step(model, tx, methods, seed=config.seed,
                                        lr_schedule=lr_schedule, mesh=mesh)
  evaluate = make_evaluate(config, model, mesh, eval_source, workdir)

  is_main = jax.process_index() == 0
  writer = metric_writers.create_writer(workdir, total_steps, is_main)
  pending, last_train, last_test = _PendingMetrics(), {}, {}
  stopped = False
  try:
    with _sigterm_flag() as stop_requested:
      batches = loader.iterate(start_step)
      for step in range(start_step, total_steps):
        state, metrics = train_step(state, parallel.to_global(next(batches), mesh))
        pending.add(step + 1, metrics)
        epoch_done = (step + 1) % steps_per_epoch == 0
        epoch = (step + 1) // steps_per_epoch
        last = step + 1 == total_steps
        if (step + 1) % config.log_every_steps == 0 or epoch_done:
          last_train = pending.flush(config.batch_size)
          writer.write_scalars(step + 1, {**last_train, 'train/epoch': (step + 1) /
                                          steps_per_epoch})
        if epoch_done:
          results = evaluate(state, epoch=None if last else epoch)
          last_test.update(results)
          if results:
            writer.write_scalars(step + 1, results)
        if (epoch_done and epoch % config.checkpoint_every_epochs == 0) or last:
          checkpointer.save(state)
        if epoch_done:
          pending.restart_clock()
        if (stop_requested() or step + 1 == stop_after_step) and not last:
          last_train = pending.flush(config.batch_size) or last_train
          checkpointer.save(state)
          logging.warning('SIGTERM: saved the checkpoint at step %d and stopped', step + 1)
          stopped = True
          break
    if not stopped and not last_test:  # resumed a finished run: evaluate its final state
      last_test = evaluate(state, epoch=None)
  finally:
    checkpointer.close()
    writer.close()
  if stopped:  # resumable; the summary comes with the run's end
    return {}
  summary = {**last_test, 'train/loss': last_train.get('train/loss', float('nan')),
             'steps': total_steps, 'epochs': config.num_epochs,
             'wall_seconds': time.time() - start_time}
  if is_main:
    with open(os.path.join(workdir, 'summary.json'), 'w', encoding='utf-8') as f:
      json.dump(summary, f, indent=2, sort_keys=True)
  return summary
