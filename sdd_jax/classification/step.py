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
import jax.numpy as jnp
import optax

from sdd_jax.metrics import diagnostics
from sdd_jax import losses
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


def plain_logits(model, variables, images):
  """The network's logits in evaluation mode, float32."""
  return model.apply(variables, images, train=False).astype(jnp.float32)


def make_logits_fn(model, mesh, apply_fn: Optional[Callable] = None):
  """Returns jitted `logits_fn(variables, images) -> logits` in evaluation mode (running
  BatchNorm statistics, no dropout), float32, sharded like the images. `apply_fn(model,
  variables, images)` replaces the plain network's logits (e.g. a method's `eval_logits`)."""
  data = parallel.data_sharding(mesh)
  apply_fn = apply_fn or plain_logits

  def logits_fn(variables, images):
    with jax.default_matmul_precision('float32'):  # no TF32 in evaluation (docs/evaluation.md §0.2)
      return apply_fn(model, variables, images).astype(jnp.float32)

  return jax.jit(logits_fn, in_shardings=(parallel.replicated_sharding(mesh), data),
                 out_shardings=data)


def make_input_grad_fn(model, mesh, apply_fn: Optional[Callable] = None):
  """Returns jitted `input_grad_fn(variables, images, labels, temperature)`: the gradient with
  respect to `images` of sum_i CE(logits_i / temperature, labels_i), evaluation mode, float32
  (the sum, not the mean, so that tiny ODIN gradients do not underflow; docs/evaluation.md §0.5).
  `temperature` is a Python number, a compile-time constant (no host-to-device copy).
  `apply_fn` as in `make_logits_fn`."""
  data = parallel.data_sharding(mesh)
  apply_fn = apply_fn or plain_logits

  def input_grad_fn(variables, images, labels, temperature):
    def total(x):
      with jax.default_matmul_precision('float32'):  # no TF32 in eval (docs/evaluation.md §0.2)
        logits = apply_fn(model, variables, x).astype(jnp.float32)
      return jnp.sum(losses.cross_entropy(logits / temperature, labels))
    return jax.grad(total)(images.astype(jnp.float32))

  return jax.jit(input_grad_fn, static_argnums=3,
                 in_shardings=(parallel.replicated_sharding(mesh), data, data),
                 out_shardings=data)
