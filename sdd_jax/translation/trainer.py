"""`train_and_evaluate(config, workdir)` for `config.task == 'translation'`: its part of the
one training loop (`train/loop.py`, which owns the order of things: claim, restore, the
preemption watch, the transfer guard, `profile_steps`, checkpoints, the stop rule, summary).

Here: validate the config and check the data files (the workdir is not touched before both
pass); open the corpus (`corpus.py`; the toy corpus is built in a cache folder); and
`TranslationHooks`: the Transformer's state (PS-KD's teacher: a copy of the initial params), one
AOT-compiled step per batch shape (the loader's buckets; `summary['train/compiled_shapes']`
counts those compiled by the session that finished the run), the batch of a step a pure
function of (seed, step) (`text_data.TranslationLoader`), `train/tokens_per_sec`, teacher-forced
`valid/nll` at each epoch's end; at the end BLEU, NLL and hypotheses of valid and test
(`evaluation.evaluate_translation`: `evals/translation/{results.json,<split>.hyp}`).
"""
import logging
import time
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections

from sdd_jax import parallel
from sdd_jax.train import loop
from sdd_jax.train import state as state_lib
from sdd_jax.train import throughput
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
  return loop.run(config, workdir, TranslationHooks(config, workdir, mesh, corpus),
                  start_time=start_time, stop_after_step=stop_after_step)


class TranslationHooks(loop.Hooks):
  """The translation task's part of the loop (`train/loop.py`): the Transformer's state (PS-KD's
  teacher), the bucketed batches (one compiled step per shape), tokens/s, `valid/nll` at each
  epoch's end, and BLEU of valid and test at the end."""
  fixed_shapes = False  # buckets: no one FLOP count per step

  def __init__(self, config, workdir, mesh, corpus):
    self.config, self.workdir, self.mesh, self.corpus = config, workdir, mesh, corpus
    self.steps_per_epoch = corpus.loader.steps_per_epoch
    self.unit = throughput.Unit('tokens', metric='train/tokens')

  def create_state(self):
    config = self.config
    lr_schedule = optim.make_lr_schedule(config.optim)
    tx = optim.make_optimizer(config.optim, lr_schedule)
    self.model = model_lib.create_model(config.model, self.corpus.tokenizer.vocab_size)
    sample = jnp.ones((1, 2), jnp.int32)
    epsilon, alpha = method_settings(config)
    self.train_step = step_lib.make_train_step(
        self.model, tx, seed=config.seed, lr_schedule=lr_schedule, mesh=self.mesh,
        epsilon=epsilon, pskd_alpha=alpha, steps_per_epoch=self.steps_per_epoch,
        num_epochs=config.num_epochs)
    return create_state(self.model, tx, config, sample, sample, self.mesh)

  def start(self, state, restored: bool):
    self.evaluator = evaluation.TranslationEvaluator(self.config, self.model, self.mesh,
                                                     self.corpus)
    return state

  def batches(self, start_step: int):
    return self.corpus.loader.iterate(start_step)

  def evaluate_epoch(self, state, epoch, last):
    with jax.transfer_guard('allow'):
      return {'valid/nll': self.evaluator.nll(state.params, 'valid')}

  def evaluate_final(self, state, epochs, writer):
    """BLEU, NLL and the hypotheses of both splits (evaluation.py)."""
    results = {}
    for split in evaluation.SPLITS:
      figures = evaluation.evaluate_translation(
          self.config, self.workdir, split, params=state.params,
          step=self.steps_per_epoch * self.config.num_epochs, evaluator=self.evaluator)
      results.update({f'{split}/{k}': v for k, v in figures.items() if k != 'signature'})
    writer.write_scalars(self.steps_per_epoch * self.config.num_epochs, results)
    return results

  def summary_extras(self, compiled_shapes):
    logging.info('compiled the train step for %d batch shapes', compiled_shapes)
    return {'train/compiled_shapes': compiled_shapes,
            'train/dropped_sentences': getattr(self.corpus.loader, 'num_dropped', 0)}
