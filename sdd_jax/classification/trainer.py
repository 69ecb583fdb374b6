"""train_and_evaluate(config, workdir): the only module that knows the order of things.

1. validate the config, open the data and trace the train step on abstract values (no
   workdir is touched before these pass);
2. claim the workdir (a different config's run refuses), build model, optimizer and state;
3. restore the newest readable checkpoint (its bytes verified), if any, with the run's
   host-side state (loss window, images/s clock) that the checkpoint's record holds;
4. train, evaluating and checkpointing every so many epochs, stopping cleanly on preemption;
5. write `summary.json` (strict JSON; the same figures however often the run was stopped,
   killed or re-run; a finished workdir re-run returns it and changes nothing).
"""
import functools
import logging
import time
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax.config import validation as config_validation
from sdd_jax import data as data_lib
from sdd_jax.metrics import diagnostics
from sdd_jax.classification import init_from as init_from_lib
from sdd_jax.evaluators import report as eval_report
from sdd_jax.evaluators import runner as eval_runner
from sdd_jax import methods as methods_lib
from sdd_jax.workdir import writers as metric_writers
from sdd_jax.models import build as models_build
from sdd_jax.train import keys
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import preemption
from sdd_jax.classification import probe
from sdd_jax.train import profiling
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from sdd_jax.train import throughput
from sdd_jax.workdir import log as train_log
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import paths as workdir_path

NonFiniteLossError = train_log.NonFiniteLossError
WorkdirError = workdir_lib.WorkdirError


create_model = models_build.create_model  # where it lives: sdd_jax/models/build.py


def make_evaluate(config, model, mesh, eval_source, workdir: str, methods=()):
  """Returns `evaluate(state, epoch) -> metrics`: the one evaluation runner
  (`evaluators/runner.py`) over the sections of `config.evals` due at `epoch` (all of them when
  `epoch` is None, i.e. after training), DML's extra predictors included. A section whose data
  is missing is skipped with one logged line; `evaluate.skipped` holds the last final
  evaluation's {key: reason} (a status for the summary, not a metric)."""
  runner = eval_runner.Runner(config, model, mesh, workdir, methods,
                              sources={config.data.eval_split: eval_source})
  skipped: Dict[str, str] = {}

  def evaluate(state, epoch=None) -> Dict[str, float]:
    outcome = runner(state.variables, epoch)
    if epoch is None:
      skipped.clear()
      skipped.update(outcome.skipped)
      eval_report.write_report(workdir, {'checkpoint step': int(jax.device_get(state.step))})
    return outcome.metrics

  evaluate.skipped = skipped
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
  profiling.check_steps(config.get(profiling.FIELD, ()), loader.steps_per_epoch * config.num_epochs)
  init_from_lib.check(config)
  built = _build(config, mesh, methods, loader)
  _trace_step(config, mesh, methods, loader, built)  # a method's contract: before any write
  with workdir_lib.Claim(workdir, config, resolve=methods_lib.resolve_config):
    return _train(config, workdir, mesh, methods, loader, eval_source, start_time,
                  stop_after_step, built)


def _build(config, mesh, methods, loader) -> Dict[str, object]:
  """The run's model, optimizer, schedule, run facts and jitted train step (nothing runs)."""
  steps_per_epoch = loader.steps_per_epoch
  lr_schedule = optim.make_lr_schedule(config.optim, steps_per_epoch, config.num_epochs)
  tx = optim.make_optimizer(config.optim, lr_schedule)
  model = create_model(config)
  run = methods_lib.RunInfo(num_examples=len(loader.source), num_classes=config.data.num_classes,
                            steps_per_epoch=steps_per_epoch, num_epochs=config.num_epochs,
                            num_devices=mesh.devices.size)
  train_step = step_lib.make_train_step(  # uint8 batches, normalised on the device
      model, tx, methods, seed=config.seed, lr_schedule=lr_schedule, mesh=mesh, run=run,
      normalize_fn=data_lib.make_normalize_fn(config.data, config.model.dtype))
  return dict(lr_schedule=lr_schedule, tx=tx, model=model, run=run, train_step=train_step)


def _trace_step(config, mesh, methods, loader, built) -> None:
  """Traces the train step once on abstract values (shapes only: no compilation, no device
  memory) before the workdir is claimed, so that what only tracing finds, such as a method
  that breaks its contract (`methods/contract.py`), is one line with nothing written."""
  sample = jnp.zeros((1, *loader.image_shape), jnp.float32)
  state = state_lib.create_abstract_state(built['model'], built['tx'], config.seed, sample, mesh,
                                          methods, built['run'])
  rows = jax.process_count()  # the loader's batch is this process's share of the global one
  batch = {k: jax.ShapeDtypeStruct((v.shape[0] * rows, *v.shape[1:]), v.dtype)
           for k, v in loader.batch(0).items()}
  jax.eval_shape(built['train_step'], state, batch)


def _train(config, workdir, mesh, methods, loader, eval_source, start_time,
           stop_after_step, built) -> Dict[str, float]:
  """The body of `train_and_evaluate`, run while the workdir is claimed."""
  steps_per_epoch = loader.steps_per_epoch
  total_steps = steps_per_epoch * config.num_epochs
  lr_schedule, tx, model, run = (built[k] for k in ('lr_schedule', 'tx', 'model', 'run'))
  summary_path = workdir_path.join(workdir, 'summary.json')
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.max_to_keep,
                                             config_digest=workdir_lib.config_digest(
                                                 config, methods_lib.resolve_config))
  finished = train_log.finished_summary(checkpointer, summary_path, total_steps)
  if finished is not None:  # a finished run, re-run: change nothing
    return finished
  checkpointer.check_readable()  # before the model is built and compiled
  sample = jnp.zeros((1, *loader.image_shape), jnp.float32)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx, methods=methods,
                                    run=run),
                  out_shardings=state_lib.shardings(mesh, methods))(
                      state_lib.init_key(config.seed), sample)
  restored, restored_step = checkpointer.restore(state)
  if restored is not None:
    state = restored
    logging.info('resumed from the checkpoint at step %d', restored_step)
  else:  # a new run: config.model.init_from's weights, if any
    state = init_from_lib.apply(config, model, state)
  start_step = int(jax.device_get(state.step))

  train_step = built['train_step']
  evaluate = make_evaluate(config, model, mesh, eval_source, workdir, methods)

  is_main = jax.process_index() == 0
  # No writer for a finished run (a new TensorBoard file would be its only change).
  writer = metric_writers.create_writer(workdir, total_steps, is_main and
                                        start_step < total_steps, start_step)
  pending, last_test = train_log.PendingMetrics(checkpointer.restored_run), {}
  collapse = diagnostics.CollapseWatch(config.data.num_classes, steps_per_epoch, start_step)
  probe_fn = None
  if config.probe.every_steps:  # the KL-direction analysis (paper §3.3, Table 8, Figure 4)
    normalize = data_lib.make_normalize_fn(config.data)  # the probe sees float32 images
    probe_fn = jax.jit(lambda variables, images, step: probe.probe_metrics(
        model, variables, normalize({'images': images})['images'],
        keys.step_key(config.seed, step), rate=config.probe.rate,
        temperature=config.probe.temperature))
  stopped = False
  try:
    with preemption.watch(start_step) as stop_requested, jax.transfer_guard('disallow'), \
        profiling.step_trace(config.get(profiling.FIELD, ()), workdir, total_steps,
                             is_main) as before_step:
      batches = loader.iterate(start_step)
      step_fn = None
      for step in range(start_step, total_steps):
        batch = parallel.to_global(next(batches), mesh)
        if step_fn is None:  # compile ahead of time once, to read XLA's FLOP count
          step_fn = train_step.lower(state, batch).compile()
          pending.flops_per_step = throughput.compiled_flops(step_fn)
          pending.restart_clock()
        before_step(step + 1, state)
        state, metrics = step_fn(state, batch)
        pending.add(step + 1, metrics)
        checkpointer.commit_records()  # the record of a save orbax has finished since
        if probe_fn is not None and (step + 1) % config.probe.every_steps == 0:
          probed = probe_fn(methods_lib.inference_variables(methods, state.variables),
                            batch['images'], parallel.replicate(np.int32(step), mesh))
          writer.write_scalars(step + 1, metric_writers.scalars_of(jax.device_get(probed)))
        epoch_done = (step + 1) % steps_per_epoch == 0
        epoch = (step + 1) // steps_per_epoch
        last = step + 1 == total_steps
        if (step + 1) % config.log_every_steps == 0 or epoch_done:
          train_metrics = pending.flush(config.batch_size)
          writer.write_scalars(step + 1, {**train_metrics, **collapse.observe(step + 1,
                                                                              train_metrics),
                                          'train/epoch': (step + 1) / steps_per_epoch})
        if (epoch_done and epoch % config.checkpoint_every_epochs == 0) or last:
          # before evaluating: an evaluator error loses no training
          checkpointer.save(state, pending.run_state())
        if epoch_done:
          results = evaluate(state, epoch=None if last else epoch)
          last_test.update(results)
          if results:
            writer.write_scalars(step + 1, results)
          pending.restart_clock()  # images/s counts training only
        if (stop_requested(step + 1) or step + 1 == stop_after_step) and not last:
          # The steps since the last log point stay a window of the record, not a mean.
          checkpointer.save(state, pending.run_state())
          logging.warning('stop requested: saved the checkpoint at step %d and stopped', step + 1)
          stopped = True
          break
    if not stopped and not last_test:  # resumed a finished run: evaluate its final state
      last_test = evaluate(state, epoch=None)
  finally:
    checkpointer.close()
    writer.close()
  if stopped:  # resumable; the summary comes with the run's end
    return {}
  summary = {**last_test, **pending.summary(config.batch_size),
             'steps': total_steps, 'epochs': config.num_epochs,
             'wall_seconds': time.time() - start_time}
  if evaluate.skipped:  # a status, not a metric: {section key: one-line reason}
    summary['skipped'] = dict(evaluate.skipped)
  if is_main:
    train_log.write_summary(summary_path, summary)
  return summary
