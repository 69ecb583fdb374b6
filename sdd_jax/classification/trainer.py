"""train_and_evaluate(config, workdir) for the image task: its part of the one training loop.

Here: validate the config, open the data and build model, optimizer and jitted step
(`ImageHooks`), then `train/loop.py` runs the order of things (trace the step on abstract
values before the workdir is touched, claim, restore with the run's host-side state, train,
checkpoint before evaluating, stop cleanly on preemption, `summary.json`: the same figures
however often the run was stopped, killed or re-run; a finished workdir re-run returns it and
changes nothing). `ImageHooks` adds the image parts: methods' states, `init_from`, images/s,
the KL probe, the collapse watch and the evaluators of `config.evals`.
"""
import functools
import time
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

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
from sdd_jax.train import loop
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.classification import probe
from sdd_jax.train import profiling
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from sdd_jax.train import throughput
from sdd_jax.workdir import log as train_log
from sdd_jax.workdir import claim as workdir_lib

NonFiniteLossError = train_log.NonFiniteLossError
WorkdirError = workdir_lib.WorkdirError


create_model = models_build.create_model  # where it lives: sdd_jax/models/build.py


def make_evaluate(config, model, mesh, eval_source, workdir: str, methods=()):
  """Returns `evaluate(state, epoch) -> metrics`: the one evaluation runner
  (`evaluators/runner.py`) over the sections of `config.evals` due at `epoch` (all of them when
  `epoch` is None, i.e. after training; never those with `in_training=False`), DML's extra
  predictors included. A section whose data
  is missing is skipped with one logged line; `evaluate.skipped` holds the last final
  evaluation's {key: reason} (a status for the summary, not a metric)."""
  runner = eval_runner.Runner(config, model, mesh, workdir, methods,
                              sources={config.data.eval_split: eval_source}, training=True)
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
  hooks = ImageHooks(config, workdir, mesh, methods, loader, eval_source)
  return loop.run(config, workdir, hooks, start_time=start_time, stop_after_step=stop_after_step)


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


class ImageHooks(loop.Hooks):
  """The image task's part of the loop (`train/loop.py`): the state with its methods' states,
  `init_from`, the loader's batches, images/s, the probe and the collapse watch, and the
  evaluators of `config.evals`."""
  resolve = staticmethod(methods_lib.resolve_config)

  def __init__(self, config, workdir, mesh, methods, loader, eval_source):
    self.config, self.workdir, self.mesh, self.methods = config, workdir, mesh, methods
    self.loader, self.eval_source = loader, eval_source
    self.steps_per_epoch = loader.steps_per_epoch
    self.unit = throughput.Unit('images', per_step=config.batch_size)
    self.built = _build(config, mesh, methods, loader)
    self.train_step, self.model = self.built['train_step'], self.built['model']
    self._sample = jnp.zeros((1, *loader.image_shape), jnp.float32)

  def trace(self) -> None:
    """Traces the train step once on abstract values (shapes only: no compilation, no device
    memory) before the workdir is claimed, so that what only tracing finds, such as a method
    that breaks its contract (`methods/contract.py`), is one line with nothing written."""
    built = self.built
    state = state_lib.create_abstract_state(self.model, built['tx'], self.config.seed,
                                            self._sample, self.mesh, self.methods, built['run'])
    rows = jax.process_count()  # the loader's batch is this process's share of the global one
    batch = {k: jax.ShapeDtypeStruct((v.shape[0] * rows, *v.shape[1:]), v.dtype)
             for k, v in self.loader.batch(0).items()}
    jax.eval_shape(self.train_step, state, batch)

  def create_state(self):
    return jax.jit(functools.partial(state_lib.create_train_state, self.model, self.built['tx'],
                                     methods=self.methods, run=self.built['run']),
                   out_shardings=state_lib.shardings(self.mesh, self.methods))(
                       state_lib.init_key(self.config.seed), self._sample)

  def start(self, state, restored: bool):
    config, model = self.config, self.model
    self.evaluate = make_evaluate(config, model, self.mesh, self.eval_source, self.workdir,
                                  self.methods)
    self.collapse = diagnostics.CollapseWatch(config.data.num_classes, self.steps_per_epoch,
                                              int(jax.device_get(state.step)))
    self.probe_fn = None
    if config.probe.every_steps:  # the KL-direction analysis (paper §3.3, Table 8, Figure 4)
      normalize = data_lib.make_normalize_fn(config.data)  # the probe sees float32 images
      self.probe_fn = jax.jit(lambda variables, images, step: probe.probe_metrics(
          model, variables, normalize({'images': images})['images'],
          keys.step_key(config.seed, step), rate=config.probe.rate,
          temperature=config.probe.temperature))
    # a new run: config.model.init_from's weights, if any
    return state if restored else init_from_lib.apply(config, model, state)

  def batches(self, start_step: int):
    return self.loader.iterate(start_step)

  def after_step(self, number, state, batch):
    if self.probe_fn is None or number % self.config.probe.every_steps:
      return None
    probed = self.probe_fn(methods_lib.inference_variables(self.methods, state.variables),
                           batch['images'], parallel.replicate(np.int32(number - 1), self.mesh))
    return metric_writers.scalars_of(jax.device_get(probed))

  def log_extras(self, number, means):
    return self.collapse.observe(number, means)

  def evaluate_epoch(self, state, epoch, last):
    return self.evaluate(state, epoch=None if last else epoch)

  def evaluate_final(self, state, epochs, writer):
    return epochs or self.evaluate(state, epoch=None)  # resumed a finished run: its final state

  def summary_extras(self, compiled_shapes):
    # a status, not a metric: {section key: one-line reason}
    return {'skipped': dict(self.evaluate.skipped)} if self.evaluate.skipped else {}
