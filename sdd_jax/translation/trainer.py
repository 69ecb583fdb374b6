"""`train_and_evaluate(config, workdir)` for `config.task == 'translation'`: the order of
things, on sdd_jax's own infrastructure (no copy of it).

1. validate the config and check the data files (the workdir is not touched before both
   pass);
2. open the corpus (`corpus.py`; the toy corpus is built in a cache folder), claim the
   workdir (`workdir.Claim`: lock, config.json, config digest), build model, optimizer and
   state;
3. restore the newest readable checkpoint (`checkpoint.Checkpointer`, orbax) with its
   host-side run state (`train_log.PendingMetrics`);
4. train under the preemption watch (`preemption.watch`), one AOT-compiled step per batch
   shape (the loader's buckets; `summary['train/compiled_shapes']` counts those compiled by
   the session that finished the run), the batch of a step a pure function of (seed, step)
   (`text_data.TranslationLoader`); checkpoint every `checkpoint_every_epochs` epochs, at the
   end and at a stop; teacher-forced `valid/nll` at each epoch's end;
5. at the end: BLEU, NLL and hypotheses of valid and test (`evaluation.evaluate_translation`:
   `evals/translation/{results.json,<split>.hyp}`), then `summary.json` (strict JSON,
   `train_log.write_summary`).
"""
import logging
import time
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections

from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax.workdir import writers as metric_writers
from sdd_jax import parallel
from sdd_jax.train import preemption
from sdd_jax.train import state as state_lib
from sdd_jax.workdir import log as train_log
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.translation import corpus as corpus_lib
from sdd_jax.translation import evaluation
from sdd_jax.translation import model as model_lib
from sdd_jax.translation import optim
from sdd_jax.translation import pskd
from sdd_jax.translation import step as step_lib
from sdd_jax.translation import validation


def method_settings(config):
  """(epsilon, pskd_alpha or None) from `config.methods` (validated)."""
  methods = config.methods
  epsilon = methods.label_smoothing.epsilon if 'label_smoothing' in methods else 0.0
  alpha = methods.ps_kd.alpha if 'ps_kd' in methods else None
  return epsilon, alpha


def create_state(model, tx, config, sample_src, sample_tgt, mesh) -> state_lib.TrainState:
  """The initial `TrainState` (replicated): params from `init_key(seed)`, no batch_stats, and
  PS-KD's teacher (a copy of the initial params) when `config.methods.ps_kd` is set."""
  with_pskd = method_settings(config)[1] is not None

  def init(key):
    params = model.init({'params': key}, sample_src, sample_tgt, train=False)['params']
    method_states = {pskd.NAME: pskd.init_state(params)} if with_pskd else {}
    return state_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats={},
                                opt_state=tx.init(params), method_states=method_states)

  return jax.jit(init, out_shardings=parallel.replicated_sharding(mesh))(
      state_lib.init_key(config.seed))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after_step: int = 0) -> Dict[str, float]:
  """Trains `config` in `workdir` (resuming from its newest checkpoint); returns the summary
  (`{}` after a stop). `stop_after_step=k > 0` stops after step k as SIGTERM would."""
  start_time = time.time()
  validation.validate(config)
  mesh = parallel.create_mesh()
  corpus_lib.prepare(config)
  corpus = corpus_lib.create_corpus(config, num_devices=mesh.devices.size,
                                    process_index=jax.process_index(),
                                    process_count=jax.process_count())
  with workdir_lib.Claim(workdir, config):
    return _train(config, workdir, mesh, corpus, start_time, stop_after_step)


def _train(config, workdir, mesh, corpus, start_time, stop_after_step) -> Dict[str, float]:
  """The body of `train_and_evaluate`, run while the workdir is claimed."""
  loader = corpus.loader
  steps_per_epoch = loader.steps_per_epoch
  total_steps = steps_per_epoch * config.num_epochs
  summary_path = workdir_path.join(workdir, 'summary.json')
  checkpointer = checkpoint_lib.Checkpointer(workdir, config.max_to_keep,
                                             config_digest=workdir_lib.config_digest(config))
  finished = train_log.finished_summary(checkpointer, summary_path, total_steps)
  if finished is not None:  # a finished run, re-run: change nothing
    return finished
  checkpointer.check_readable()
  lr_schedule = optim.make_lr_schedule(config.optim)
  tx = optim.make_optimizer(config.optim, lr_schedule)
  model = model_lib.create_model(config.model, corpus.tokenizer.vocab_size)
  sample = jnp.ones((1, 2), jnp.int32)
  state = create_state(model, tx, config, sample, sample, mesh)
  restored, restored_step = checkpointer.restore(state)
  if restored is not None:
    state = restored
    logging.info('resumed from the checkpoint at step %d', restored_step)
  start_step = int(jax.device_get(state.step))
  epsilon, alpha = method_settings(config)
  train_step = step_lib.make_train_step(
      model, tx, seed=config.seed, lr_schedule=lr_schedule, mesh=mesh, epsilon=epsilon,
      pskd_alpha=alpha, steps_per_epoch=steps_per_epoch, num_epochs=config.num_epochs)
  evaluator = evaluation.TranslationEvaluator(config, model, mesh, corpus)

  is_main = jax.process_index() == 0
  writer = metric_writers.create_writer(workdir, total_steps, is_main and
                                        start_step < total_steps, start_step)
  pending = train_log.PendingMetrics(checkpointer.restored_run)
  compiled = {}  # batch shapes -> the step compiled for them
  stopped, last = False, start_step >= total_steps
  try:
    with preemption.watch(start_step) as stop_requested, jax.transfer_guard('disallow'):
      batches = loader.iterate(start_step)
      for step in range(start_step, total_steps):
        batch = parallel.to_global(next(batches), mesh)
        shapes = tuple(sorted((k, v.shape) for k, v in batch.items()))
        if shapes not in compiled:
          compiled[shapes] = train_step.lower(state, batch).compile()
          pending.restart_clock()
        state, metrics = compiled[shapes](state, batch)
        pending.add(step + 1, metrics)
        checkpointer.commit_records()
        epoch_done = (step + 1) % steps_per_epoch == 0
        epoch = (step + 1) // steps_per_epoch
        last = step + 1 == total_steps
        if (step + 1) % config.log_every_steps == 0 or epoch_done:
          means = pending.flush(1)  # 'train/images_per_sec' is then steps/s
          means['train/tokens_per_sec'] = means.pop('train/images_per_sec') * means.get(
              'train/tokens', 0.0)
          writer.write_scalars(step + 1, {**means, 'train/epoch': (step + 1) / steps_per_epoch})
        if (epoch_done and epoch % config.checkpoint_every_epochs == 0) or last:
          checkpointer.save(state, pending.run_state())
        if epoch_done:
          with jax.transfer_guard('allow'):
            writer.write_scalars(step + 1, {'valid/nll': evaluator.nll(state.params, 'valid')})
          pending.restart_clock()
        if (stop_requested(step + 1) or step + 1 == stop_after_step) and not last:
          checkpointer.save(state, pending.run_state())
          logging.warning('stop requested: saved the checkpoint at step %d and stopped', step + 1)
          stopped = True
          break
    if not stopped:  # BLEU, NLL and the hypotheses of both splits (evaluation.py)
      results = {}
      for split in evaluation.SPLITS:
        figures = evaluation.evaluate_translation(config, workdir, split, params=state.params,
                                                  step=total_steps, evaluator=evaluator)
        results.update({f'{split}/{k}': v for k, v in figures.items() if k != 'signature'})
      writer.write_scalars(total_steps, results)
  finally:
    checkpointer.close()
    writer.close()
  if stopped:
    return {}
  logging.info('compiled the train step for %d batch shapes', len(compiled))
  summary = {**results, 'train/loss': pending.last.get('train/loss', float('nan')),
             'train/tokens_per_sec': pending.last.get('train/tokens_per_sec', float('nan')),
             'train/compiled_shapes': len(compiled),
             'train/dropped_sentences': getattr(loader, 'num_dropped', 0), 'steps': total_steps,
             'epochs': config.num_epochs, 'wall_seconds': time.time() - start_time}
  if is_main:
    train_log.write_summary(summary_path, summary)
  return summary
