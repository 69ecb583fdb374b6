"""XLA FLOP counts of a known computation, and MFU arithmetic."""
import jax
import jax.numpy as jnp
import pytest

from sdd_jax import parallel
from sdd_jax.train import throughput


def test_flops_of_a_sharded_matmul_are_counted_over_all_devices():
  mesh = parallel.create_mesh()
  matmul = jax.jit(lambda a, b: a @ b, in_shardings=(parallel.data_sharding(mesh),
                                                     parallel.replicated_sharding(mesh)))
  compiled = matmul.lower(jnp.ones((64, 32)), jnp.ones((32, 16))).compile()
  assert throughput.compiled_flops(compiled) == 2 * 64 * 32 * 16


def test_mfu_only_where_the_peak_is_known(monkeypatch):
  assert throughput.peak_flops() is None  # CPUs have no entry
  assert throughput.throughput_metrics(None, 3.0) == {}
  metrics = throughput.throughput_metrics(1e12, 3.0)
  assert metrics == {'train/flops_per_step': 1e12, 'train/flops_per_sec': 3e12}
  monkeypatch.setitem(throughput.PEAK_FLOPS, jax.devices()[0].device_kind, 1e12)
  metrics = throughput.throughput_metrics(1e12, 3.0)
  assert metrics['train/mfu'] == pytest.approx(3e12 / (1e12 * jax.device_count()))
