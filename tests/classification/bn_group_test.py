"""`config.model.bn_group` in the train step: G = the whole batch is today's step bitwise, a group
of G on 8 devices is the one-device computation, no BN collective when G fits one device's rows,
and (trainer_test's bitwise stop-and-resume runs with groups of 4) a stopped run resumes
bitwise."""
import functools
import re

import jax
import numpy as np

from sdd_jax import models
from sdd_jax import parallel
from tests.classification import step_test

BATCH = 16  # 2 rows per device on 8 devices


def _model(bn_group):
  return models.get_model('resnet18_cifar', num_classes=10, bn_group=bn_group,
                          **models.tiny_kwargs('resnet18_cifar'))


@functools.lru_cache(maxsize=None)
def _run(bn_group, num_devices):
  """step_test's run (its model, optimiser and 2 batches of 16: with bn_group 0 the very
  programs step_test compiles, so the compilation cache serves them) -> (state, losses, step)."""
  state, history, step = step_test._run(  # pylint: disable=protected-access
      jax.devices()[:num_devices], step_test._batches(2), {}, model=_model(bn_group))  # pylint: disable=protected-access
  return jax.device_get(state), [float(m['train/loss']) for m in history], step


def test_a_group_of_the_whole_batch_is_the_global_batch_step_bitwise():
  today, today_losses, _ = _run(0, 1)
  whole, whole_losses, _ = _run(BATCH, 1)
  assert today_losses == whole_losses
  jax.tree.map(np.testing.assert_array_equal, today.params, whole.params)
  jax.tree.map(np.testing.assert_array_equal, today.batch_stats, whole.batch_stats)
  jax.tree.map(np.testing.assert_array_equal, today.opt_state, whole.opt_state)


def test_a_group_on_eight_devices_equals_one_device():
  """Groups of 2 examples (one device's rows): the 8-device step = the 1-device step, and not
  the global-batch step (the group changes the numbers)."""
  assert jax.device_count() == 8, 'tests/conftest.py sets 8 simulated CPU devices'
  one, one_losses, _ = _run(2, 1)
  eight, eight_losses, _ = _run(2, 8)
  np.testing.assert_allclose(one_losses, eight_losses, rtol=1e-5)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
  jax.tree.map(close, one.params, eight.params)
  jax.tree.map(close, one.batch_stats, eight.batch_stats)
  _, global_losses, _ = _run(0, 1)
  assert abs(global_losses[0] - one_losses[0]) > 1e-3


def _all_reduces(bn_group) -> int:
  """All-reduce ops in the compiled 8-device step (XLA's tuple all-reduces count once)."""
  state, _, step = _run(bn_group, 8)
  mesh = parallel.create_mesh(jax.devices())
  batch = parallel.to_global(step_test._batches(1)[0], mesh)  # pylint: disable=protected-access
  state = jax.device_put(state, parallel.replicated_sharding(mesh))
  text = step.lower(state, batch).compile().as_text()
  return len(re.findall(r' all-reduce(?:-start)?\(', text))


def test_no_batch_norm_all_reduce_when_the_group_fits_one_device():
  """Global BN: each BN layer's forward statistics and backward sums cross devices (tiny
  ResNet-18: 12 BN layers; XLA pairs some, >= 12 all-reduces in all). Groups of 2 = one
  device's rows: what is left is the gradient all-reduce (into which XLA folds the running
  statistics' mean over groups) and one scalar predicate; measured 19 -> 2 on jax 0.10."""
  global_batch, grouped = _all_reduces(0), _all_reduces(2)
  assert global_batch >= 12 and grouped <= 2, (global_batch, grouped)
