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
