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


@pytest.fixture
def gcs_root():
  """A fresh, empty gs:// prefix on a real GCS server (tests/object_store.py's emulator)."""
  from tests import object_store  # pylint: disable=g-import-not-at-top
  return object_store.fresh_root()
