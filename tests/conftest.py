"""Test-wide set-up: 8 simulated CPU devices, so every test can build a multi-device mesh.

The flag must be set before JAX is imported anywhere; a caller's own XLA_FLAGS wins.
"""
import collections
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
  object_store_kill_test must equal, bit for bit. Made once in a session: under xdist in the
  session's folder that all workers share, under a lock (the first to need it runs it, another
  waits for it)."""
  import fcntl  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  from tests.train import preemption_test  # pylint: disable=g-import-not-at-top
  shared = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):  # basetemp is <this session>/popen-gwN
    shared = shared.parent
  workdir = shared / 'straight_killable_run'
  with open(shared / 'straight_killable_run.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (workdir / 'summary.json').exists():  # written last, by a run that ended
      shutil.rmtree(workdir, ignore_errors=True)  # what a failed run left
      result = subprocess.run(preemption_test.COMMAND + ['--workdir', str(workdir)],
                              cwd=preemption_test.ROOT, env=preemption_test.ENV,
                              capture_output=True, text=True, timeout=300)
      assert result.returncode == 0, result.stderr[-2000:]
  return str(workdir)


@pytest.fixture
def gcs_root():
  """A fresh, empty gs:// prefix on a real GCS server (tests/object_store.py's emulator)."""
  from tests import object_store  # pylint: disable=g-import-not-at-top
  return object_store.fresh_root()


# Scheduling under `pytest -n N` (xdist's default `load`: each worker gets runs of consecutive
# tests in collection order). The files measured slowest (SLOW_FIRST, slowest first; seconds
# on 2 cores, warm cache) are collected first, then the others by their number of tests, most
# first, so that the heavy subprocess tests start early instead of ending the run on one worker.
# (`--dist loadfile`, each file whole to one worker, was measured slower on 2 cores: 624 s
# against 489 s for the whole suite, 2026-12-05: it ran the heaviest files side by side, each
# starting processes of its own.) A new slow file belongs in SLOW_FIRST.
SLOW_FIRST = (
    'tests/configs_test.py',  # 23 smoke runs of 3-11 s
    'tests/classification/multiprocess_test.py',  # 78: 2 x 2 processes, 1 x 8 devices
    'tests/workdir/object_store_kill_test.py',  # 48: 3 killed runs on gs://, evaluate, report
    'tests/train/preemption_test.py',  # 45: killed runs, Ctrl-C
    'tests/aot/compile_test.py',  # 20-46 cold: libtpu compiles, never cached
    'tests/workdir/faults_test.py',  # the fault catalogue, 2 entries
    'tests/classification/evaluation_test.py',
    'tests/translation/trainer_test.py',
    'tests/detection/finetune_test.py',
    'tests/benchmarks/device_check_test.py',  # 8.5 warm, 25-57 cold
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
  rank = {path: i for i, path in enumerate(SLOW_FIRST)}
  files = [item.nodeid.split('::')[0] for item in items]
  counts = collections.Counter(files)
  order = {path: (rank.get(path, len(rank)), 0 if path in rank else -counts[path], path)
           for path in counts}
  keys = {id(item): order[path] for item, path in zip(items, files)}
  items.sort(key=lambda item: keys[id(item)])  # stable: a file's own order is kept
