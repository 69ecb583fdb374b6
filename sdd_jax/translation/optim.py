"""fairseq's IWSLT optimizer and schedule: Adam (0.9, 0.98) with decoupled weight decay, an
inverse-square-root learning rate after a linear warm-up, optional gradient-norm clipping.

- Weight decay: fairseq's `adam` optimizer "corresponds to the AdamW variant of Adam in its
  weight decay behavior" (fairseq/optim/adam.py: `p -= lr * weight_decay * p` beside the Adam
  update, on every parameter): `optax.adamw` with no mask, not an L2 term added to the
  gradient.
- Schedule (fairseq `inverse_sqrt` with `warmup_init_lr` 0): the update taken after `step`
  updates uses `lr * min(step / warmup, sqrt(warmup / step))`, so the first update has lr 0 as
  in fairseq. Warm-up is counted in updates (fairseq's `--warmup-updates`), not epochs.
- Clipping: `clip_norm` on the global gradient norm before Adam; 0 = none (fairseq's IWSLT
  recipe passes `--clip-norm 0.0`).
"""
from typing import Callable

import jax.numpy as jnp
import optax


def make_lr_schedule(optim_config) -> Callable:
  """`lr(step)` = `optim_config.lr * min(step / warmup_steps, sqrt(warmup_steps / step))`."""
  peak, warmup = optim_config.lr, optim_config.warmup_steps

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    if not warmup:
      return peak * jnp.where(step > 0, 1.0, 0.0) * jnp.sqrt(1.0 / jnp.maximum(step, 1.0))
    return peak * jnp.minimum(step / warmup, jnp.sqrt(warmup / jnp.maximum(step, 1.0)))

  return schedule


def make_optimizer(optim_config, lr_schedule) -> optax.GradientTransformation:
  """[clip_by_global_norm(clip_norm)] + AdamW(b1, b2, eps, weight_decay) on every parameter."""
  adam = optax.adamw(lr_schedule, b1=optim_config.b1, b2=optim_config.b2, eps=optim_config.eps,
                     weight_decay=optim_config.weight_decay)
  if optim_config.clip_norm:
    return optax.chain(optax.clip_by_global_norm(optim_config.clip_norm), adam)
  return adam
