"""Data parallelism: one `jax.jit` over a Mesh with a single 'data' axis.

The batch is sharded along its first dimension (`P('data')`), the train state is replicated,
and BatchNorm sees the global batch (XLA inserts the reductions). The same code runs on one
CPU, N GPUs, or a multi-host TPU pod once `jax.distributed.initialize()` has run.
"""
import os
from typing import Any, Dict

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def maybe_initialize_distributed(force: bool = False) -> None:
  """Calls `jax.distributed.initialize()` when asked or when a coordinator address is set.

  On Cloud TPU pods and SLURM clusters JAX finds the coordinator itself; elsewhere set
  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
  """
  if jax.distributed.is_initialized():
    return
  if force or os.environ.get('JAX_COORDINATOR_ADDRESS'):
    jax.distributed.initialize()


def create_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def to_global(batch: Dict[str, np.ndarray], mesh: Mesh) -> Dict[str, jax.Array]:
  """Host-local numpy batch (this process's rows) -> global arrays sharded over 'data'."""
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated_sharding(mesh))
