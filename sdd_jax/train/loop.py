"""The one training loop: every task's `train_and_evaluate` builds its `Hooks` and calls `run`.

The loop owns the order of things and every run-level invariant; a task says only what is its
own (its state, step, batches, throughput unit, evaluations and summary extras):
1. before the workdir is touched: `config.profile_steps` is checked and the task's `trace`
   runs (the step traced on abstract values: a method's contract error is one line, nothing
   written);
2. the workdir is claimed (`workdir.claim.Claim`: a different config's run refuses); a finished
   run re-run returns its summary and changes nothing;
3. the newest readable checkpoint is restored with the run's host-side state (loss window,
   throughput clock: `workdir.log.PendingMetrics`);
4. the steps run under the preemption watch (SIGTERM, first Ctrl-C), `jax.transfer_guard
   ('disallow')` and the profiler window; the step is compiled ahead of time once per batch
   shape (at the first one XLA's FLOP count is read, where the task's shapes are fixed); the
   metrics are logged every `log_every_steps` and at each epoch's end; a checkpoint is saved
   every `checkpoint_every_epochs`, at the end and at a stop, always before evaluating (an
   evaluator error loses no training); `stop_after_step=k` stops after step k as SIGTERM would;
5. after the last step: the final evaluation, then `summary.json` (strict JSON).
"""
import logging
import time
from typing import Dict, Iterator, Optional

import jax

from sdd_jax import parallel
from sdd_jax.train import preemption
from sdd_jax.train import profiling
from sdd_jax.train import throughput
from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import log as train_log
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.workdir import writers as metric_writers


class Hooks:
  """What a task gives the loop. Set `mesh`, `steps_per_epoch`, `unit` and `train_step` (jitted,
  `(state, batch) -> (state, metrics)`, metrics with `train/loss`; set in `create_state` at the
  latest), and override `create_state` and `batches`; the other hooks default to nothing."""
  mesh: jax.sharding.Mesh
  steps_per_epoch: int
  unit: throughput.Unit  # what train/<unit>_per_sec counts
  train_step = None
  resolve = None  # the config's resolve for the claim and the checkpoints' config digest
  fixed_shapes = True  # one batch shape: XLA's FLOP count of the step is read and logged

  def trace(self) -> None:
    """Before the claim: checks that need the traced step (e.g. a method's contract)."""

  def create_state(self):
    """The initial train state (on the mesh), which a checkpoint then replaces."""
    raise NotImplementedError

  def start(self, state, restored: bool):
    """After the restore (`restored`: from a checkpoint): the state to train from (e.g. a new
    run's `init_from` weights); builds what evaluation needs."""
    return state

  def batches(self, start_step: int) -> Iterator[dict]:
    """This process's host batches from step `start_step` on (0-based)."""
    raise NotImplementedError

  def after_step(self, number: int, state, batch) -> Optional[Dict[str, float]]:
    """Scalars to write after step `number` (1-based), or None."""
    return None

  def log_extras(self, number: int, means: Dict[str, float]) -> Dict[str, float]:
    """More scalars for a log point, given the window's training means."""
    return {}

  def evaluate_epoch(self, state, epoch: int, last: bool) -> Dict[str, float]:
    """Metrics at the end of epoch `epoch` (`last`: the run's last step), written at its step
    and kept for `evaluate_final`. Runs under `jax.transfer_guard('disallow')`."""
    return {}

  def evaluate_final(self, state, epochs: Dict[str, float], writer) -> Dict[str, float]:
    """After the last step (not after a stop): the evaluation figures of the summary; `epochs`
    holds `evaluate_epoch`'s metrics of this session (empty when a finished run is resumed);
    `writer` takes scalars the task logs itself."""
    return epochs

  def summary_extras(self, compiled_shapes: int) -> dict:
    """More figures for the summary; `compiled_shapes`: the step's compilations this session."""
    return {}


def run(config, workdir: str, hooks: Hooks, *, start_time: float,
        stop_after_step: int = 0) -> Dict[str, float]:
  """Trains with `hooks` in `workdir` (resuming from its newest checkpoint); returns the summary,
  `{}` after a stop. `config` gives num_epochs, max_to_keep, log_every_steps,
  checkpoint_every_epochs and profile_steps."""
  total_steps = hooks.steps_per_epoch * config.num_epochs
  profiling.check_steps(config.get(profiling.FIELD, ()), total_steps)
  hooks.trace()  # before any write
  with workdir_lib.Claim(workdir, config, **_resolve(hooks)):
    return _train(config, workdir, hooks, start_time, stop_after_step)


def _train(config, workdir, hooks, start_time, stop_after_step) -> Dict[str, float]:
  """The body of `run`, while the workdir is claimed."""
  steps_per_epoch, mesh = hooks.steps_per_epoch, hooks.mesh
  total_steps = steps_per_epoch * config.num_epochs
  summary_path = workdir_path.join(workdir, 'summary.json')
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.max_to_keep,
                                             config_digest=workdir_lib.config_digest(
                                                 config, **_resolve(hooks)))
  finished = train_log.finished_summary(checkpointer, summary_path, total_steps)
  if finished is not None:  # a finished run, re-run: change nothing
    return finished
  checkpointer.check_readable()  # before the state is built and the step compiled
  state = hooks.create_state()
  restored, restored_step = checkpointer.restore(state)
  if restored is not None:
    state = restored
    logging.info('resumed from the checkpoint at step %d', restored_step)
  state = hooks.start(state, restored is not None)
  start_step = int(jax.device_get(state.step))

  is_main = jax.process_index() == 0
  # No writer for a finished run (a new TensorBoard file would be its only change).
  writer = metric_writers.create_writer(workdir, total_steps, is_main and
                                        start_step < total_steps, start_step)
  pending, epochs = train_log.PendingMetrics(checkpointer.restored_run), {}
  compiled = {}  # batch shapes -> the step compiled for them
  stopped = False
  try:
    with preemption.watch(start_step) as stop_requested, jax.transfer_guard('disallow'), \
        profiling.step_trace(config.get(profiling.FIELD, ()), workdir, total_steps,
                             is_main) as before_step:
      batches = hooks.batches(start_step)
      for step in range(start_step, total_steps):
        batch = parallel.to_global(next(batches), mesh)
        shapes = tuple(sorted((k, v.shape) for k, v in batch.items()))
        if shapes not in compiled:  # ahead of time, to read XLA's FLOP count
          compiled[shapes] = hooks.train_step.lower(state, batch).compile()
          if hooks.fixed_shapes:
            pending.flops_per_step = throughput.compiled_flops(compiled[shapes])
          pending.restart_clock()
        before_step(step + 1, state)
        state, metrics = compiled[shapes](state, batch)
        pending.add(step + 1, metrics)
        checkpointer.commit_records()  # the record of a save orbax has finished since
        scalars = hooks.after_step(step + 1, state, batch)
        if scalars:
          writer.write_scalars(step + 1, scalars)
        epoch_done = (step + 1) % steps_per_epoch == 0
        epoch = (step + 1) // steps_per_epoch
        last = step + 1 == total_steps
        if (step + 1) % config.log_every_steps == 0 or epoch_done:
          means = pending.flush(hooks.unit)
          writer.write_scalars(step + 1, {**means, **hooks.log_extras(step + 1, means),
                                          'train/epoch': (step + 1) / steps_per_epoch})
        if (epoch_done and epoch % config.checkpoint_every_epochs == 0) or last:
          # before evaluating: an evaluator error loses no training
          checkpointer.save(state, pending.run_state())
        if epoch_done:
          results = hooks.evaluate_epoch(state, epoch, last)
          epochs.update(results)
          if results:
            writer.write_scalars(step + 1, results)
          pending.restart_clock()  # the throughput counts training only
        if (stop_requested(step + 1) or step + 1 == stop_after_step) and not last:
          # The steps since the last log point stay a window of the record, not a mean.
          checkpointer.save(state, pending.run_state())
          logging.warning('stop requested: saved the checkpoint at step %d and stopped', step + 1)
          stopped = True
          break
    if not stopped:  # after the last step, or a finished run resumed (its final state)
      results = hooks.evaluate_final(state, epochs, writer)
  finally:
    checkpointer.close()
    writer.close()
  if stopped:  # resumable; the summary comes with the run's end
    return {}
  summary = {**results, **pending.summary(hooks.unit), 'steps': total_steps,
             'epochs': config.num_epochs, 'wall_seconds': time.time() - start_time,
             **hooks.summary_extras(len(compiled))}
  if is_main:
    train_log.write_summary(summary_path, summary)
  return summary



def _resolve(hooks) -> dict:
  """The `resolve=` keyword of the claim and the config digest, where the task has one."""
  return {} if hooks.resolve is None else {'resolve': hooks.resolve}
