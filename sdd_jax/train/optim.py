"""The optimizer and the learning-rate schedule: epochs become steps here and nowhere else.

`optim.name`: 'sgd' (the paper recipe: momentum, PyTorch-style coupled weight decay on every
parameter) or 'adamw' (Loshchilov & Hutter 2019: decoupled weight decay on the kernels only, as
DeiT / timm train ViTs). `optim.schedule`: 'step' (`lr_boundaries`, `lr_decay`) or 'cosine'
(from `lr` to 0 over the run). Both schedules take an optional linear warm-up.
"""
from typing import Callable

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ('sgd', 'adamw')
SCHEDULES = ('step', 'cosine')


def make_lr_schedule(optim_config, steps_per_epoch: int,
                     num_epochs: float | None = None) -> Callable[[int], float]:
  """The lr at each step, with an optional linear warm-up over `warmup_epochs`.

  'step' (default): piecewise constant, `lr * lr_decay**k` after the k-th boundary (in epochs);
  the paper recipe: lr 0.1, x0.1 at epochs 100 and 150 (steps 100*spe, 150*spe).
  'cosine': `lr * (1 + cos(pi * step / total)) / 2`, total = `num_epochs * steps_per_epoch`
  (`num_epochs` required).
  """
  if optim_config.get('schedule', 'step') == 'cosine':
    if num_epochs is None:
      raise ValueError("make_lr_schedule: schedule 'cosine' needs num_epochs")
    decayed = optax.cosine_decay_schedule(optim_config.lr,
                                          max(1, int(round(num_epochs * steps_per_epoch))))
  else:
    boundaries = {int(round(epoch * steps_per_epoch)): optim_config.lr_decay
                  for epoch in optim_config.lr_boundaries}
    decayed = optax.piecewise_constant_schedule(optim_config.lr, boundaries)
  warmup_steps = int(round(optim_config.warmup_epochs * steps_per_epoch))
  if not warmup_steps:
    return decayed

  def schedule(step):  # the boundaries stay absolute steps (optax.join_schedules would shift them)
    return decayed(step) * jnp.minimum(1.0, step / warmup_steps)

  return schedule


def _kernels(params):
  """True for the leaves named 'kernel' (Dense / conv / attention weights)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: bool(path) and getattr(path[-1], 'key', None) == 'kernel', params)


def make_optimizer(optim_config, lr_schedule) -> optax.GradientTransformation:
  """'sgd' (default): SGD with momentum and PyTorch-style coupled weight decay on every
  parameter, `g <- g + wd * w` before the momentum buffer, as `torch.optim.SGD(weight_decay=wd)`.
  'adamw': `optax.adamw` (b1 0.9, b2 0.999) with decoupled weight decay `w <- w - lr * wd * w`
  on the kernels only (not biases, norms, class token or position embeddings)."""
  if optim_config.get('name', 'sgd') == 'adamw':
    return optax.adamw(lr_schedule, weight_decay=optim_config.weight_decay, mask=_kernels)
  return optax.chain(
      optax.add_decayed_weights(optim_config.weight_decay),
      optax.sgd(lr_schedule, momentum=optim_config.momentum or None,
                nesterov=optim_config.nesterov),
  )
