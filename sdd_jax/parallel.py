"""Data parallelism: one `jax.jit` over a Mesh with a single 'data' axis.

The batch is sharded along its first dimension (`P('data')`), the train state is replicated,
and BatchNorm sees the global batch (XLA inserts the reductions). The same code runs on one
CPU, N GPUs, or a multi-host TPU pod once `jax.distributed.initialize()` has run.
"""
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
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
  """Host-local numpy batch (this process's rows) -> global arrays sharded over 'data'.

  The one deliberate host-to-device copy of the batches: allowed under the training loop's
  `jax.transfer_guard('disallow')` (with several processes JAX makes it as an implicit one)."""
  sharding = data_sharding(mesh)
  with jax.transfer_guard_host_to_device('allow'):
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated_sharding(mesh))


def eval_batch_rows(batch_size: int, num_devices: int, num_processes: int = 1) -> int:
  """Rows of a global eval batch of `batch_size` examples: rounded up to a multiple of the
  device and process counts (the extra rows are padding, masked out), so any device count
  evaluates any `config.eval_batch_size`."""
  multiple = int(np.lcm(max(1, num_devices), max(1, num_processes)))
  return -(-batch_size // multiple) * multiple


def padded_rows(num_rows: int, num_devices: int, block: int = 1024) -> int:
  """Rows of a row-sharded table holding `num_rows`: rounded up to a multiple of
  `lcm(block, num_devices)`, so it splits evenly over the devices; for any power-of-two device
  count up to `block` the shape (and so the checkpoint) does not depend on the count."""
  multiple = np.lcm(block, max(1, num_devices))
  return int(-(-max(num_rows, 1) // multiple) * multiple)


def _row_range(table_shard: jax.Array):
  rows = table_shard.shape[0]
  return jax.lax.axis_index(DATA_AXIS) * rows, rows


def gather_rows(table: jax.Array, index: jax.Array, mesh: Mesh = None) -> jax.Array:
  """`table[index]` for a table sharded by rows over 'data' (`P('data', None)`), without ever
  assembling the table on one device: the `[n]` indices are all-gathered, each device looks up
  the rows it holds (zeros elsewhere) and a `psum` over 'data' adds the `[n, C]` pieces.
  Communication per call: n indices and n x C values. `mesh=None`: plain indexing."""
  if mesh is None:
    return table[index]

  def local(table_shard, index):
    start, rows = _row_range(table_shard)
    offset = index - start
    inside = (offset >= 0) & (offset < rows)
    values = table_shard[jnp.clip(offset, 0, rows - 1)]
    return jax.lax.psum(jnp.where(inside[:, None], values, 0), DATA_AXIS)

  return jax.shard_map(local, mesh=mesh, in_specs=(P(DATA_AXIS, None), P()),
                       out_specs=P())(table, index)


def set_rows(table: jax.Array, index: jax.Array, values: jax.Array,
             mesh: Mesh = None) -> jax.Array:
  """`table.at[index].set(values)` for a table sharded by rows over 'data': indices and `[n, C]`
  values are all-gathered and each device writes the rows it holds; the result keeps the
  sharding `P('data', None)`. Indices must be distinct. `mesh=None`: plain scatter."""
  if mesh is None:
    return table.at[index].set(values.astype(table.dtype))

  def local(table_shard, index, values):
    start, rows = _row_range(table_shard)
    offset = index - start
    offset = jnp.where((offset >= 0) & (offset < rows), offset, rows)  # rows: dropped
    return table_shard.at[offset].set(values.astype(table_shard.dtype), mode='drop')

  return jax.shard_map(local, mesh=mesh, in_specs=(P(DATA_AXIS, None), P(), P()),
                       out_specs=P(DATA_AXIS, None))(table, index, values)


# Where a TPU or GPU may be: Google's PCI vendor id (TPU chips), the TPU VM device files, and
# the NVIDIA and AMD (ROCm) GPU device files.
_GOOGLE_PCI_VENDOR = '0x1ae0'
_ACCELERATOR_FILES = ('/dev/accel*', '/dev/vfio/[0-9]*', '/dev/nvidia[0-9]*', '/dev/nvidiactl',
                      '/dev/kfd')


def skip_absent_tpu() -> bool:
  """With libtpu installed (the `tpu` extra, for the compile check) JAX's backend start on a
  host without TPUs tries the TPU backend, which fails quietly for JAX but prints about five
  lines of libtpu's TPU-discovery errors to stderr. Where that start can only end on the CPU
  anyway (JAX_PLATFORMS unset, no Google PCI device, no TPU or GPU device file), this sets
  `jax_platforms='cpu'`, so nothing is printed; a TPU VM, a GPU host and a user's own
  JAX_PLATFORMS are left alone. Returns whether it set it. `import sdd_jax` calls it."""
  import glob  # pylint: disable=g-import-not-at-top
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  if os.environ.get('JAX_PLATFORMS') or jax.config.jax_platforms:
    return False
  if importlib.util.find_spec('libtpu') is None:
    return False
  for vendor in glob.glob('/sys/bus/pci/devices/*/vendor'):
    try:
      with open(vendor) as f:
        if f.read().strip() == _GOOGLE_PCI_VENDOR:
          return False
    except OSError:
      return False  # cannot tell: leave JAX's own choice
  if any(glob.glob(pattern) for pattern in _ACCELERATOR_FILES):
    return False
  jax.config.update('jax_platforms', 'cpu')
  return True
