"""XLA FLOP counts of a known computation, MFU arithmetic, and the units a task's throughput
counts (images: a fixed batch; tokens: a step metric)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import parallel
from sdd_jax.train import throughput
from sdd_jax.workdir import log as train_log


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


def test_a_unit_counts_a_fixed_batch_or_a_step_metric():
  images = throughput.Unit('images', per_step=128)
  tokens = throughput.Unit('tokens', metric='train/tokens')
  assert (images.key, tokens.key) == ('train/images_per_sec', 'train/tokens_per_sec')
  assert images.per_sec(2.5, {'train/tokens': 7.0}) == 320.0
  assert tokens.per_sec(2.5, {'train/tokens': 7.0}) == 17.5


@pytest.mark.parametrize('unit,per_step', [
    (throughput.Unit('tokens', metric='train/tokens'), 400.0),  # 300 and 500 tokens: mean 400
    (throughput.Unit('images', per_step=16), 16.0)])
def test_pending_metrics_log_and_summarise_the_tasks_unit(unit, per_step):
  pending = train_log.PendingMetrics()
  for step, tokens in ((1, 300.0), (2, 500.0)):
    pending.add(step, {'train/loss': np.float32(step), 'train/tokens': np.float32(tokens)})
  means = pending.flush(unit)
  assert pending.steps_timed == 2
  assert means[unit.key] == pytest.approx(2 / pending.seconds * per_step)
  assert {k for k in means if k.endswith('_per_sec')} == {unit.key}  # no images/s for tokens
  assert pending.summary(unit)[unit.key] == pytest.approx(means[unit.key])
