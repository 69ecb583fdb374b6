"""The jitted prediction functions the evaluators run over a mesh: logits in evaluation mode
(`make_logits_fn`) and the input gradient of the cross-entropy (`make_input_grad_fn`, FGSM and
ODIN), float32, sharded like the images.
"""
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from sdd_jax import losses
from sdd_jax import parallel


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
