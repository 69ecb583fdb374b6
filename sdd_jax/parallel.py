"""Data parallelism: one `jax.jit` over a Mesh with a single 'data' axis.

The batch is sharded along its first dimension (`P('data')`), the train state is replicated,
and BatchNorm sees the global batch (XLA inserts the reductions). The same code runs on one
CPU, N GPUs, or a multi-host TPU pod once `jax.distributed.initialize()` has run.
"""
import os
from typing import Any, Dict, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
  """Calls `jax.distributed.initialize()` once, before any computation.

  On Cloud TPU pods, SLURM and other supported clusters JAX finds the coordinator itself (no
  arguments); elsewhere pass the coordinator address, the process count and this process's id.
  CPU processes talk through gloo, so several CPU processes on one machine can stand in for a
  pod in tests.
  """
  if jax.distributed.is_initialized():
    return
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


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
