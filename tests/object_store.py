"""A real Google Cloud Storage server for the tests: gcp-storage-emulator, in a subprocess.

Why this emulator: orbax writes array checkpoints through TensorStore, whose native GCS driver
speaks the JSON API and can be pointed at any server (`TENSORSTORE_GCS_HTTP_URL`); etils.epath
reaches gs:// through fsspec's gcsfs, which honours `STORAGE_EMULATOR_HOST`. So one server
serves both, over HTTP, as real GCS would. It is pure Python (pip `gcp-storage-emulator`, no
Docker, no binary download), which CI can install from the package registry. orbax 0.12's
TensorStore path builder supports gs:// only (it rewrites `s3://` to `s3:/`), so GCS is the
object store we can test end to end.

The server runs as its own process (tests/gcs_emulator.py: the emulator, in memory, plus the
`x-goog-generation` read header of real GCS that TensorStore needs): started in a thread of
the pytest process it hung on the first request, so it gets its own interpreter; `start()` waits until its
port answers and stops it when the test session ends. `start()` starts one server per process, sets the environment every client reads (inherited by
the train.py subprocesses of a test) and returns its URL. Use the `gcs_root` fixture of
tests/conftest.py: a fresh `gs://` prefix per test.
"""
import atexit
import os
import socket
import subprocess
import sys
import time
import uuid

BUCKET = 'sdd-jax-test'
_SERVER = {}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def environment(url: str) -> dict:
  """What the clients read: gcsfs (STORAGE_EMULATOR_HOST), TensorStore (TENSORSTORE_GCS_HTTP_URL,
  and a fixed token instead of Google credentials), epath kept on fsspec even where TensorFlow
  is installed (its gfile backend would not see the emulator), and gcsfs's bucket-type probe
  off (it asks the Storage Control gRPC API, which the emulator has not, and warns at each
  request; on real GCS it finds the bucket's type)."""
  return {'STORAGE_EMULATOR_HOST': url, 'TENSORSTORE_GCS_HTTP_URL': url,
          'GOOGLE_AUTH_TOKEN_FOR_TESTING': 'emulator', 'GOOGLE_CLOUD_PROJECT': 'sdd-jax-test',
          'EPATH_USE_TF': 'false', 'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false'}


def _answers(port: int) -> bool:
  with socket.socket() as s:
    s.settimeout(0.2)
    return s.connect_ex(('127.0.0.1', port)) == 0


def start() -> str:
  """Starts the emulator once per process (bucket BUCKET, in memory); returns its URL."""
  if 'url' not in _SERVER:
    port = _free_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen([sys.executable, '-m', 'tests.gcs_emulator', str(port), BUCKET],
                               cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _answers(port):
      if process.poll() is not None or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f'gcp-storage-emulator did not start (exit {process.poll()})')
      time.sleep(0.05)
    atexit.register(_stop, process)
    _SERVER.update(process=process, url=f'http://127.0.0.1:{port}')
    os.environ.update(environment(_SERVER['url']))
  return _SERVER['url']


def _stop(process) -> None:
  process.terminate()
  try:
    process.wait(timeout=5)
  except subprocess.TimeoutExpired:
    process.kill()


def fresh_root() -> str:
  """A new, empty gs:// prefix in the emulator's bucket."""
  start()
  return f'gs://{BUCKET}/{uuid.uuid4().hex[:12]}'
