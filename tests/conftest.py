"""Test-wide set-up: 8 simulated CPU devices, so every test can build a multi-device mesh.

The flag must be set before JAX is imported anywhere; a caller's own XLA_FLAGS wins.
"""
import os

os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# One persistent compilation cache for the session (pytest-xdist workers and the train.py
# subprocesses of the end-to-end tests inherit it): a program compiled once is loaded after.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', '/tmp/sdd_jax_test_cache')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# etils.epath picks its gs:// backend once per process (functools.cache), at the first gs://
# path: with TensorFlow installed (CI installs every extra) that would be tf.io.gfile, which
# does not know the GCS emulator of the object-store tests. Keep it on fsspec/gcsfs throughout.
os.environ['EPATH_USE_TF'] = 'false'

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='session')
def straight_killable_run(tmp_path_factory):
  """tests/train/preemption_test.py's COMMAND (16 steps on 2 devices, a checkpoint every 4) run
  straight to its end on a local workdir: what the killed-and-resumed runs of preemption_test and
  object_store_kill_test must equal, bit for bit. Made once per worker; both files are one unit
  of work (SHARED below), so once in a suite."""
  import subprocess  # pylint: disable=g-import-not-at-top
  from tests.train import preemption_test  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path_factory.mktemp('straight') / 'run')
  result = subprocess.run(preemption_test.COMMAND + ['--workdir', workdir],
                          cwd=preemption_test.ROOT, env=preemption_test.ENV, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  return workdir


@pytest.fixture
def gcs_root():
  """A fresh, empty gs:// prefix on a real GCS server (tests/object_store.py's emulator)."""
  from tests import object_store  # pylint: disable=g-import-not-at-top
  return object_store.fresh_root()


# Scheduling under `pytest -n N` (pytest.ini: --dist loadgroup --no-loadscope-reorder).
# xdist's default `load` sends each worker runs of consecutive tests in collection order, so the
# slowest files (tests/workdir/, last alphabetically) came last and one worker ran them while the
# other had nothing left; a module's tests could also be split between workers, each paying its
# module-scoped fixture (a training run). Here each file is one unit of work, sent whole to one
# worker, slowest first (longest-processing-time-first); the independent smoke runs of
# configs_test spread one by one. SLOW_FIRST: measured slowest, slowest first (seconds on 2
# cores, warm cache); a file not listed keeps its place after them. Files that share one run
# (SHARED) go to one worker together, so that the run is made once.
SLOW_FIRST = (
    'tests/classification/multiprocess_test.py',  # 78: 2 x 2 processes, 1 x 8 devices
    'tests/workdir/faults_test.py',  # 65: the fault catalogue, 2 entries
    'tests/workdir/object_store_kill_test.py',  # 48: 3 killed runs on gs://, evaluate, report
    'tests/train/preemption_test.py',  # 45: 4 killed/straight runs, Ctrl-C
    'tests/configs_test.py',  # 8-11 a smoke run
    'tests/aot/compile_test.py',  # 20-46 cold: libtpu compiles, never cached
    'tests/translation/trainer_test.py',
    'tests/classification/evaluation_test.py',
    'tests/detection/finetune_test.py',
    'tests/benchmarks/device_check_test.py',  # 8.5 warm, 25-57 cold
)
ONE_BY_ONE = ('tests/configs_test.py::test_smoke_run[',)
SHARED = {'tests/workdir/object_store_kill_test.py': 'tests/train/preemption_test.py'}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its own hook, not tryfirst)
def pytest_collection_modifyitems(items):
  rank = {path: i for i, path in enumerate(SLOW_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid.split('::')[0], len(rank)))  # stable
  for item in items:
    if not item.nodeid.startswith(ONE_BY_ONE):
      path = item.nodeid.split('::')[0]
      item.add_marker(pytest.mark.xdist_group(SHARED.get(path, path)))
