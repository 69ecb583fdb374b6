"""The train state: everything a resume needs, as one pytree.

The RNG is not stored: the step key is `fold_in(key(seed), step)`, and the data position is
the step, so restoring `step` restores both.
"""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self):
    return {'params': self.params, 'batch_stats': self.batch_stats}


def init_key(seed: int) -> jax.Array:
  """The parameter-initialisation key. An 'rbg' key: XLA compiles a ResNet's initialisers
  about 8x faster on CPU than with the partitionable threefry default (17 s -> 1.5 s for a
  tiny ResNet), and the replicated init needs no sharding-invariant random bits."""
  return jax.random.key(seed, impl='rbg')


def create_train_state(model, tx: optax.GradientTransformation, key: jax.Array,
                       sample_images: jax.Array) -> TrainState:
  """Initialises parameters (`train=False`, so running statistics start at 0 / 1)."""
  variables = model.init(key, sample_images, train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(params))
