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
from sdd_jax import diagnostics
from sdd_jax import evaluators as evaluators_lib
from sdd_jax.evaluators import report as eval_report
from sdd_jax.evaluators import results as eval_results
from sdd_jax import methods as methods_lib
from sdd_jax import metric_writers
from sdd_jax import models as models_lib
from sdd_jax import optim
from sdd_jax import parallel
from sdd_jax import probe
from sdd_jax import state as state_lib
from sdd_jax import step as step_lib
from sdd_jax import throughput
from sdd_jax import workdir as workdir_lib
from sdd_jax.errors import UserError

class NonFiniteLossError(UserError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


WorkdirError = workdir_lib.WorkdirError


def create_model(config: ml_collections.ConfigDict):
  return models_lib.get_model(config.model.name, num_classes=config.data.num_classes,
                              head_hidden=tuple(config.model.head_hidden),
                              dtype=jnp.dtype(config.model.dtype), **config.model.kwargs)


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
    self.steps_timed, self.seconds = 0, 0.0  # over the whole run, evaluation excluded

  def add(self, step: int, metrics: dict) -> None:
    self._items.append((step, metrics))

  def flush(self, batch_size: int, flops_per_step=None) -> Dict[str, float]:
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
    steps_per_sec = len(steps) / max(now - self._time, 1e-9)
    self.steps_timed += len(steps)
    self.seconds += now - self._time
    means['train/images_per_sec'] = steps_per_sec * batch_size
    means.update(throughput.throughput_metrics(flops_per_step, steps_per_sec))
    self._items, self._time = [], now
    return means

  def restart_clock(self) -> None:
    """Excludes evaluation and checkpoint time from images/s."""
    self._time = time.time()


def make_evaluate(config, model, mesh, eval_source, workdir: str, methods=()):
  """Returns `evaluate(state, epoch) -> metrics`: runs the evaluators of `config.evals` whose
  cadence includes `epoch` (all of them when `epoch` is None, i.e. after training). An
  evaluator whose data is missing is skipped with one logged line. The evaluators see the
  plain network (`methods.inference_variables`); the methods' extra predictors
  (`methods.eval_logits`, e.g. DML's second network) get the `accuracy` evaluator, at its
  cadence, with their own metric prefix."""
  evaluators = evaluators_lib.create_evaluators(config.evals)
  logits_fn = step_lib.make_logits_fn(model, mesh)
  extra_logits_fns = {prefix: step_lib.make_logits_fn(model, mesh, fn)
                      for prefix, fn in methods_lib.eval_logits(methods).items()}
  input_grad_fn = step_lib.make_input_grad_fn(model, mesh)
  ctx = evaluators_lib.EvalContext(data_config=config.data, batch_size=config.eval_batch_size,
                                   mesh=mesh, source=eval_source, workdir=workdir)

  def due(evaluator, epoch) -> bool:
    return epoch is None or bool(evaluator.every_epochs and epoch % evaluator.every_epochs == 0)

  def evaluate(state, epoch=None) -> Dict[str, float]:
    variables = methods_lib.inference_variables(methods, state.variables)
    predict = evaluators_lib.Predictors(
        logits_fn=functools.partial(logits_fn, variables),
        input_grad_fn=functools.partial(input_grad_fn, variables))
    results = {}
    accuracy = evaluators.get('accuracy')
    for prefix, fn in extra_logits_fns.items():
      if accuracy is not None and due(accuracy, epoch):
        extra = type(accuracy)({**accuracy.section, 'prefix': prefix})
        results.update(extra(ctx, evaluators_lib.Predictors(
            logits_fn=functools.partial(fn, state.variables))))
    for name, evaluator in evaluators.items():
      if not due(evaluator, epoch):
        continue
      try:
        values = evaluator(ctx, predict)
        results.update(values)
        eval_results.merge_metrics(workdir, name, data_config=config.data, metrics=values)
      except evaluators_lib.Skipped as e:
        logging.warning('evaluator %s skipped: %s', name, e)
        results[f'skipped/{name}'] = 1.0
        eval_results.merge_metrics(workdir, name, data_config=config.data, metrics={},
                                   skipped=str(e))
    if epoch is None:
      eval_report.write_report(workdir, {'checkpoint step': int(jax.device_get(state.step))})
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
  data_lib.check_splits(config.data, train_source, eval_source)
  loader = data_lib.TrainLoader(train_source, config.data, global_batch=config.batch_size,
                                seed=config.seed, process_index=jax.process_index(),
                                process_count=jax.process_count(),
                                **data_lib.loader_options(methods_lib.batch_needs(methods)))
  with workdir_lib.Claim(workdir, config):
    return _train(config, workdir, mesh, methods, loader, eval_source, start_time,
                  stop_after_step)


def _train(config, workdir, mesh, methods, loader, eval_source, start_time,
           stop_after_step) -> Dict[str, float]:
  """The body of `train_and_evaluate`, run while the workdir is claimed."""
  steps_per_epoch = loader.steps_per_epoch
  total_steps = steps_per_epoch * config.num_epochs
  lr_schedule = optim.make_lr_schedule(config.optim, steps_per_epoch)
  tx = optim.make_optimizer(config.optim, lr_schedule)
  model = create_model(config)
  sample = jnp.zeros((1, *loader.image_shape), jnp.float32)
  run = methods_lib.RunInfo(num_examples=len(loader.source), num_classes=config.data.num_classes,
                            steps_per_epoch=steps_per_epoch, num_epochs=config.num_epochs,
                            num_devices=mesh.devices.size)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx, methods=methods,
                                    run=run),
                  out_shardings=state_lib.shardings(mesh, methods))(
                      state_lib.init_key(config.seed), sample)
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.max_to_keep)
  restored, restored_step = checkpointer.restore(state)
  if restored is not None:
    state = restored
    logging.info('resumed from the checkpoint at step %d', restored_step)
  start_step = int(jax.device_get(state.step))

  train_step = step_lib.make_train_step(model, tx, methods, seed=config.seed,
                                        lr_schedule=lr_schedule, mesh=mesh, run=run)
  evaluate = make_evaluate(config, model, mesh, eval_source, workdir, methods)

  is_main = jax.process_index() == 0
  writer = metric_writers.create_writer(workdir, total_steps, is_main)
  pending, last_train, last_test = _PendingMetrics(), {}, {}
  collapse = diagnostics.CollapseWatch(config.data.num_classes, steps_per_epoch, start_step)
  probe_fn = None
  if config.probe.every_steps:  # the KL-direction analysis (paper §3.3, Table 8, Figure 4)
    probe_fn = jax.jit(functools.partial(probe.probe_metrics, model, rate=config.probe.rate,
                                         temperature=config.probe.temperature))
  stopped = False
  try:
    with _sigterm_flag() as stop_requested:
      batches = loader.iterate(start_step)
      step_fn = flops_per_step = None
      for step in range(start_step, total_steps):
        batch = parallel.to_global(next(batches), mesh)
        if step_fn is None:  # compile ahead of time once, to read XLA's FLOP count
          step_fn = train_step.lower(state, batch).compile()
          flops_per_step = throughput.compiled_flops(step_fn)
          pending.restart_clock()
        state, metrics = step_fn(state, batch)
        pending.add(step + 1, metrics)
        if probe_fn is not None and (step + 1) % config.probe.every_steps == 0:
          probed = probe_fn(methods_lib.inference_variables(methods, state.variables),
                            batch['images'], step_lib.step_key(config.seed, step))
          writer.write_scalars(step + 1, metric_writers.scalars_of(jax.device_get(probed)))
        epoch_done = (step + 1) % steps_per_epoch == 0
        epoch = (step + 1) // steps_per_epoch
        last = step + 1 == total_steps
        if (step + 1) % config.log_every_steps == 0 or epoch_done:
          last_train = pending.flush(config.batch_size, flops_per_step)
          last_train.update(collapse.observe(step + 1, last_train))
          writer.write_scalars(step + 1, {**last_train, 'train/epoch': (step + 1) /
                                          steps_per_epoch})
        if (epoch_done and epoch % config.checkpoint_every_epochs == 0) or last:
          checkpointer.save(state)  # before evaluating: an evaluator error loses no training
        if epoch_done:
          results = evaluate(state, epoch=None if last else epoch)
          last_test.update(results)
          if results:
            writer.write_scalars(step + 1, results)
          pending.restart_clock()  # images/s counts training only
        if (stop_requested() or step + 1 == stop_after_step) and not last:
          last_train = pending.flush(config.batch_size, flops_per_step) or last_train
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
  steps_per_sec = pending.steps_timed / max(pending.seconds, 1e-9)
  summary = {**last_test, 'train/loss': last_train.get('train/loss', float('nan')),
             'train/images_per_sec': steps_per_sec * config.batch_size,
             **throughput.throughput_metrics(flops_per_step, steps_per_sec),
             'steps': total_steps, 'epochs': config.num_epochs,
             'wall_seconds': time.time() - start_time}
  if is_main:
    with open(os.path.join(workdir, 'summary.json'), 'w', encoding='utf-8') as f:
      json.dump(summary, f, indent=2, sort_keys=True)
  return summary
