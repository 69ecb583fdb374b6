"""The machine a check runs on, and the bf16 peak its MFU is measured against."""
import os
import platform
from importlib import metadata
from typing import Optional, Tuple

import jax

# Dense (no sparsity) bfloat16 tensor-core peak per device, FLOP/s, with its source.
PEAKS = {
    'NVIDIA H100 80GB HBM3': (989e12, 'NVIDIA H100 Tensor Core GPU datasheet (SXM, dense BF16 '
                              '1,979 TFLOP/s with sparsity, i.e. 989 dense)'),
    'NVIDIA H100 PCIe': (756e12, 'NVIDIA H100 Tensor Core GPU datasheet (PCIe, dense BF16 '
                         '1,513 TFLOP/s with sparsity, i.e. 756 dense)'),
    'NVIDIA H200': (989e12, 'NVIDIA H200 Tensor Core GPU datasheet (SXM, BF16 1,979 TFLOP/s '
                    'with sparsity, i.e. 989 dense)'),
    'NVIDIA A100-SXM4-80GB': (312e12, 'NVIDIA A100 Tensor Core GPU datasheet (BF16 312 '
                              'TFLOP/s dense)'),
    'NVIDIA A100-SXM4-40GB': (312e12, 'NVIDIA A100 Tensor Core GPU datasheet (BF16 312 '
                              'TFLOP/s dense)'),
}

PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'grain',
            'ml-collections', 'tensorflow-datasets')


def peak(device_kind: str, assumed_tflops: float = 0.0) -> Tuple[Optional[float], str]:
  """(peak FLOP/s per device, its source); `assumed_tflops` > 0 overrides the table (labelled
  as assumed: for CPUs, which have no entry)."""
  if assumed_tflops > 0:
    return assumed_tflops * 1e12, f'assumed: --assume_peak_tflops={assumed_tflops}'
  if device_kind in PEAKS:
    return PEAKS[device_kind]
  return None, f'no published peak in the table for {device_kind!r}: MFU not reported'


def memory_stats(device) -> dict:
  """The device's allocator statistics (bytes), {} where the backend keeps none (CPU)."""
  try:
    stats = device.memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  # backends that do not implement it
    stats = {}
  keys = ('bytes_in_use', 'peak_bytes_in_use', 'bytes_limit')
  return {k: int(stats[k]) for k in keys if k in stats}


def describe() -> dict:
  """Versions, devices, device kind, memory and host cores."""
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  device = jax.devices()[0]
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:
    cores = os.cpu_count()
  return {'python': platform.python_version(), 'versions': versions,
          'backend': jax.default_backend(), 'device_count': jax.device_count(),
          'device_kind': device.device_kind, 'devices': [str(d) for d in jax.devices()],
          'memory': memory_stats(device), 'host_cores': cores}
