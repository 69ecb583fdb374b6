"""Row-sharded tables (PS-KD's): lookups and writes over 8 devices equal plain NumPy indexing,
and the table stays split by rows."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from sdd_jax import parallel


def test_padded_rows_split_evenly_and_do_not_depend_on_power_of_two_device_counts():
  assert parallel.padded_rows(64, 8) == parallel.padded_rows(64, 1) == 1024
  assert parallel.padded_rows(50_000, 8) == 50_176
  assert parallel.padded_rows(1_281_167, 256) == 1_282_048
  assert parallel.padded_rows(100, 6) % 6 == 0


def test_gather_and_set_rows_on_a_row_sharded_table():
  mesh = parallel.create_mesh()
  rng = np.random.default_rng(0)
  table = rng.normal(size=(64, 3)).astype(np.float32)
  index = rng.permutation(64)[:16].astype(np.int32)
  values = rng.normal(size=(16, 3)).astype(np.float32)
  sharded = jax.device_put(table, NamedSharding(mesh, P('data', None)))
  batch = parallel.to_global({'index': index, 'values': values}, mesh)

  @jax.jit
  def run(table, index, values):
    return (parallel.gather_rows(table, index, mesh),
            parallel.set_rows(table, index, values, mesh))

  rows, written = run(sharded, batch['index'], batch['values'])
  np.testing.assert_array_equal(rows, table[index])
  expected = table.copy()
  expected[index] = values
  np.testing.assert_array_equal(written, expected)
  assert written.sharding.spec == P('data', None)
  assert {s.data.shape for s in written.addressable_shards} == {(8, 3)}
  np.testing.assert_array_equal(parallel.gather_rows(jnp.asarray(table), index), table[index])


def test_skip_absent_tpu_leaves_a_set_platform_a_tpu_and_a_gpu_alone(monkeypatch, tmp_path):
  """conftest.py sets JAX_PLATFORMS=cpu: left alone. Without it, a Google PCI device (a TPU
  chip) or a GPU device file keeps JAX's own choice; only a bare host gets 'cpu'."""
  assert parallel.skip_absent_tpu() is False  # JAX_PLATFORMS=cpu (conftest.py)
  monkeypatch.delenv('JAX_PLATFORMS')
  platforms, update = jax.config.jax_platforms, jax.config.update
  update('jax_platforms', None)  # the backends have started: only the setting changes
  monkeypatch.setattr(jax.config, 'update', lambda *a: updates.append(a))
  try:
    _check_skip_absent_tpu(monkeypatch, tmp_path)
  finally:
    update('jax_platforms', platforms)
  assert jax.config.jax_platforms == platforms


updates = []


def _check_skip_absent_tpu(monkeypatch, tmp_path):
  import glob as glob_lib  # pylint: disable=g-import-not-at-top
  import importlib.util  # pylint: disable=g-import-not-at-top
  updates.clear()
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: object())  # libtpu "installed"
  vendor = tmp_path / 'vendor'
  files = {'/sys/bus/pci/devices/*/vendor': [str(vendor)]}
  monkeypatch.setattr(glob_lib, 'glob', lambda pattern: files.get(pattern, []))
  vendor.write_text('0x1ae0\n')  # Google: a TPU chip
  assert parallel.skip_absent_tpu() is False
  vendor.write_text('0x8086\n')
  files['/dev/nvidiactl'] = ['/dev/nvidiactl']
  assert parallel.skip_absent_tpu() is False
  del files['/dev/nvidiactl']
  assert updates == []
  assert parallel.skip_absent_tpu() is True
  assert updates == [('jax_platforms', 'cpu')]


def test_a_cpu_only_host_with_libtpu_prints_nothing_at_backend_start():
  """`import sdd_jax` then JAX's backend start, JAX_PLATFORMS unset: no libtpu lines on stderr
  (with libtpu installed and no TPU here, JAX alone prints about five)."""
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  env = {k: v for k, v in os.environ.items() if k != 'JAX_PLATFORMS'}
  result = subprocess.run([sys.executable, '-c', 'import sdd_jax, jax; print(jax.devices()[0].platform)'],
                          env=env, capture_output=True, text=True, timeout=120)
  assert (result.returncode, result.stdout.strip(), result.stderr) == (0, 'cpu', '')
