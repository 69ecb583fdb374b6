"""The one jitted train step, shared by every method.

Loss = CE(head(features(x)), y) + sum over the configured methods of weight * T**2 * term
(paper Eq. 5, `methods.combine`). The step key is `fold_in(key(seed), step)`, each method folds
in its own number, so one device and eight, a straight run and a resumed one, draw the same
masks. The state is replicated and the batch sharded over the mesh's 'data' axis.
"""
from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from sdd_jax import losses
from sdd_jax import methods as methods_lib
from sdd_jax import parallel


def step_key(seed: int, step: jax.Array) -> jax.Array:
  return jax.random.fold_in(jax.random.key(seed), step)


def make_train_step(model, tx: optax.GradientTransformation,
                    methods: Sequence[methods_lib.base.Method], *, seed: int, lr_schedule,
                    mesh):
  """Returns `train_step(state, batch) -> (state, metrics)`, jitted over `mesh`.

  `batch` holds global arrays sharded on 'data': `images` [batch, H, W, C], `labels` [batch],
  plus what the methods need. `metrics` are replicated scalars (`train/...`). The input state
  is donated.
  """

  def train_step(state, batch):
    key = step_key(seed, state.step)

    def loss_fn(params):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      features, updates = model.apply(variables, batch['images'], train=True,
                                      method=model.features, mutable=['batch_stats'])
      logits = model.apply(variables, features, method=model.head)
      ctx = methods_lib.StepContext(model=model, variables=variables, batch=batch,
                                    features=features, logits=logits)
      base_loss = losses.cross_entropy(logits, batch['labels'])
      total, metrics = methods_lib.combine(methods, ctx, key, base_loss)
      return total, (updates['batch_stats'], logits, metrics)

    grads, (batch_stats, logits, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics['train/top1'] = 100 * jnp.mean(jnp.argmax(logits, -1) == batch['labels'])
    metrics['train/lr'] = lr_schedule(state.step)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, metrics

  replicated = parallel.replicated_sharding(mesh)
  return jax.jit(train_step, in_shardings=(replicated, parallel.data_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def make_logits_fn(model, mesh):
  """Returns jitted `logits_fn(variables, images) -> logits` in evaluation mode (running
  BatchNorm statistics, no dropout), float32, sharded like the images."""
  data = parallel.data_sharding(mesh)

  def logits_fn(variables, images):
    return model.apply(variables, images, train=False).astype(jnp.float32)

  return jax.jit(logits_fn, in_shardings=(parallel.replicated_sharding(mesh), data),
                 out_shardings=data)


def make_input_grad_fn(model, mesh):
  """Returns jitted `input_grad_fn(variables, images, labels, temperature)`: the gradient with
  respect to `images` of sum_i CE(logits_i / temperature, labels_i), evaluation mode, float32
  (the sum, not the mean, so that tiny ODIN gradients do not underflow; eval_spec §0.5)."""
  data = parallel.data_sharding(mesh)

  def input_grad_fn(variables, images, labels, temperature):
    def total(x):
      logits = model.apply(variables, x, train=False).astype(jnp.float32)
      return jnp.sum(losses.cross_entropy(logits / temperature, labels))
    return jax.grad(total)(images.astype(jnp.float32))

  return jax.jit(input_grad_fn,
                 in_shardings=(parallel.replicated_sharding(mesh), data, data, None),
                 out_shardings=data)
