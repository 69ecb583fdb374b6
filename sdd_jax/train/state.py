"""The train state: everything a resume needs, as one pytree.

The RNG is not stored: the step key is `fold_in(key(seed), step)`, and the data position is
the step, so restoring `step` restores both. Methods may own state (PS-KD's prediction table):
`method_states[name]`, checkpointed with the rest; everything is replicated over the mesh except
what a method declares otherwise (`shardings`).
"""
import dataclasses
import functools
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from sdd_jax import methods as methods_lib
from sdd_jax import parallel


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken
  params: Any
  batch_stats: Any
  opt_state: Any
  method_states: Any = dataclasses.field(default_factory=dict)  # {method name: its state}

  @property
  def variables(self):
    return {'params': self.params, 'batch_stats': self.batch_stats}


def init_key(seed: int) -> jax.Array:
  """The parameter-initialisation key. An 'rbg' key: XLA compiles a ResNet's initialisers
  about 8x faster on CPU than with the partitionable threefry default (17 s -> 1.5 s for a
  tiny ResNet), and the replicated init needs no sharding-invariant random bits."""
  return jax.random.key(seed, impl='rbg')


def create_train_state(model, tx: optax.GradientTransformation, key: jax.Array,
                       sample_images: jax.Array, methods: Sequence[Any] = (),
                       run: Any = None) -> TrainState:
  """Initialises parameters (`train=False`, so running statistics start at 0 / 1), through
  the methods' hooks: any method may own variables at `params[<its name>]` (BYOT's auxiliary
  heads), the forward owner may lay out the network otherwise (DML's two networks), and
  methods may keep state (PS-KD's table, sized from `run`, a `methods.RunInfo`). A model
  without BatchNorm has `batch_stats == {}`."""
  variables = methods_lib.init_variables(methods, model, key, sample_images)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(params),
                    method_states=methods_lib.init_states(methods, run or methods_lib.RunInfo()))


def shardings(mesh, methods: Sequence[Any] = ()) -> TrainState:
  """The state's shardings as a pytree prefix of `TrainState`: replicated, except each
  method's state as its `state_partition()` says (PS-KD's table: rows over 'data')."""
  replicated = parallel.replicated_sharding(mesh)
  to_sharding = lambda spec: NamedSharding(mesh, spec)
  method_states = jax.tree.map(to_sharding, methods_lib.state_partitions(methods),
                               is_leaf=lambda x: isinstance(x, PartitionSpec))
  return TrainState(step=replicated, params=replicated, batch_stats=replicated,
                    opt_state=replicated, method_states=method_states)


def create_abstract_state(model, tx: optax.GradientTransformation, seed: int,
                          sample_images, mesh, methods: Sequence[Any] = (),
                          run: Any = None) -> TrainState:
  """The state's structure as `jax.ShapeDtypeStruct`s carrying their shardings (no arrays, no
  compilation): a restore target for a checkpoint of a run with `methods`."""
  abstract = jax.eval_shape(
      functools.partial(create_train_state, model, tx, methods=methods, run=run),
      init_key(seed), sample_images)

  def with_sharding(sharding, subtree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        subtree)

  return jax.tree.map(with_sharding, shardings(mesh, methods), abstract)
