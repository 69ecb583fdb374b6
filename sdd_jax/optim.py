"""The optimizer and the learning-rate schedule: epochs become steps here and nowhere else."""
from typing import Callable

import jax.numpy as jnp
import optax


def make_lr_schedule(optim_config, steps_per_epoch: int) -> Callable[[int], float]:
  """Piecewise-constant lr: `lr * lr_decay**k` after the k-th boundary (in epochs), with an
  optional linear warm-up over `warmup_epochs`.

  The paper recipe: lr 0.1, x0.1 at epochs 100 and 150 (boundaries at steps 100*spe, 150*spe).
  """
  boundaries = {int(round(epoch * steps_per_epoch)): optim_config.lr_decay
                for epoch in optim_config.lr_boundaries}
  piecewise = optax.piecewise_constant_schedule(optim_config.lr, boundaries)
  warmup_steps = int(round(optim_config.warmup_epochs * steps_per_epoch))
  if not warmup_steps:
    return piecewise

  def schedule(step):  # the boundaries stay absolute steps (optax.join_schedules would shift them)
    return piecewise(step) * jnp.minimum(1.0, step / warmup_steps)

  return schedule

def make_optimizer(optim_config, lr_schedule) -> optax.GradientTransformation:
  """SGD with momentum and PyTorch-style coupled weight decay on every parameter:
  `g <- g + wd * w` before the momentum buffer, as `torch.optim.SGD(weight_decay=wd)`."""
  return optax.chain(
      optax.add_decayed_weights(optim_config.weight_decay),
      optax.sgd(lr_schedule, momentum=optim_config.momentum or None,
                nesterov=optim_config.nesterov),
  )
