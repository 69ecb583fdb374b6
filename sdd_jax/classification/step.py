"""The one jitted train step, shared by every method.

Loss = CE(head(features(x)), y) + the configured methods' weighted terms (paper Eq. 5,
`methods.combine`). The step key is `fold_in(key(seed), step)`; each method folds in its own
number and the model's dropout its own (`train/keys.py`), so one device and eight, a
straight run and a resumed one, draw the same masks. The batch is sharded over the mesh's
'data' axis and the state replicated, except the method states a method shards
(`state.shardings`). What goes through the network, the CE targets and the method states'
updates come from the methods' hooks (`methods.prepare`, `methods.base_loss`,
`methods.update_states`); this module names no method.
"""
from typing import Callable, Optional, Sequence

import jax
import optax

from sdd_jax.metrics import diagnostics
from sdd_jax import methods as methods_lib
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.train.keys import step_key
from sdd_jax.data import normalization


def make_train_step(model, tx: optax.GradientTransformation,
                    methods: Sequence[methods_lib.base.Method], *, seed: int, lr_schedule,
                    mesh, run: Optional[methods_lib.RunInfo] = None,
                    normalize_fn: Optional[Callable] = None):
  """Returns `train_step(state, batch) -> (state, metrics)`, jitted over `mesh`.

  `batch` holds global arrays sharded on 'data': `images` [batch, H, W, C], `labels` [batch],
  plus what the methods need. `metrics` are replicated scalars (`train/...`; `train/top1`
  and the collapse diagnostics `train/share_*`, `train/confidence`, `train/dead_features`:
  `diagnostics.py`). The input state is donated. `run` gives the methods the facts of the run
  (steps per epoch, ...). `normalize_fn(batch)` (`data.make_normalize_fn`) first turns uint8
  images into normalised compute-dtype images, on the device; without it the images must be
  normalised floats already.
  """
  run = run or methods_lib.RunInfo(num_devices=mesh.devices.size)

  def train_step(state, batch):
    batch = normalize_fn(batch) if normalize_fn else normalization.check_normalized(batch)
    key = step_key(seed, state.step)

    def loss_fn(params):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      ctx, batch_stats = methods_lib.prepare(methods, model, variables, batch, key=key,
                                             step=state.step, run=run, mesh=mesh,
                                             method_states=state.method_states)
      total, metrics = methods_lib.combine(methods, ctx, key, methods_lib.base_loss(ctx))
      metrics.update(diagnostics.batch_metrics(ctx.logits, ctx.features, batch['labels']))
      method_states = methods_lib.update_states(methods, ctx)
      return total, (batch_stats, metrics, method_states)

    grads, (batch_stats, metrics, method_states) = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics['train/lr'] = lr_schedule(state.step)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state,
                              method_states={**state.method_states, **method_states})
    return new_state, metrics

  replicated = parallel.replicated_sharding(mesh)
  state_sharding = state_lib.shardings(mesh, methods)
  return jax.jit(train_step, in_shardings=(state_sharding, parallel.data_sharding(mesh)),
                 out_shardings=(state_sharding, replicated), donate_argnums=(0,))
