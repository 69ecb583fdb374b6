"""Where a workdir lives: a local folder or an object-store prefix (`gs://bucket/run`).

Every read and write of a workdir goes through `etils.epath`, which reaches local files through
`os` and `gs://` through fsspec's gcsfs (orbax writes the arrays through TensorStore's own GCS
driver). `path` keeps local paths absolute, as before, and URIs as they are.

One treatment per URI scheme (`check_supported`): every path a user gives (a workdir,
`config.model.init_from`, `evaluate.py --init_from`, `export --out`, the report's folders and
`--out`, the sweep's root) is a local path or a `gs://` URI; any other scheme (`s3://`, `az://`,
`http://`, ...) is refused in one line before anything is read or written. orbax 0.12's
TensorStore path builder turns `s3://` into `s3:/`, so array checkpoints cannot be written to S3,
and a store we cannot write is not offered for reading alone.

Before a gs:// path is used, `check_store` asks the store once (a one-object listing of the
path's prefix, which needs only the object-list permission a workdir needs anyway): a bucket that
does not exist, a refusal (403, ...) or a store that does not answer within STORE_WAIT_S
(default DEFAULT_STORE_WAIT_S seconds; the environment variable `SDD_JAX_STORE_WAIT_S` changes
it) is one line. gcsfs's own retries would otherwise wait ~36 s and end in an aiohttp traceback.
`store_errors` turns the errors of gcsfs, aiohttp and fsspec met later on a path into one line
(`StoreError`) naming the path and the cause.

gcsfs caches folder listings by default; TensorStore writes the checkpoint arrays behind its
back, and other processes write the same workdir, so a cached listing would hide their objects
(a resumed run's checkpoints, a record's files). The cache is switched off for every gs://
filesystem fsspec creates (orbax's included): each listing asks the store.

On an object store, writes of one object are atomic already, so `write_text` writes in place; a
local file is written to `<name>.tmp` and renamed over the old one, as before.
"""
import contextlib
import logging
import math
import os
import re
import time
from typing import Union

import fsspec
from etils import epath

from sdd_jax.errors import UserError

for _protocol in ('gcs', 'gs'):  # before any gs:// filesystem exists: fsspec caches instances
  fsspec.config.conf.setdefault(_protocol, {})['use_listings_cache'] = False
# gcsfs announces its experimental features at INFO on import (absl prints it on stderr) and
# logs a traceback (logger.exception) before raising an error it gives up on; the error itself
# reaches the caller, and `store_errors` makes it one line.
logging.getLogger('gcsfs').setLevel(logging.CRITICAL)

PathLike = Union[str, os.PathLike]


STORE_WAIT_ENV = 'SDD_JAX_STORE_WAIT_S'
DEFAULT_STORE_WAIT_S = 20.0


class UnsupportedScheme(UserError):
  """A path whose URI scheme is not one sdd_jax can read and write (only gs:// and local)."""


UnsupportedWorkdir = UnsupportedScheme  # its name before every path got the same rule


class StoreError(UserError):
  """An object store that is missing, refuses or does not answer: `<flag> <path>: <cause>`."""


def is_local(path: PathLike) -> bool:
  """Whether `path` is on a local filesystem (no `scheme://`)."""
  return '://' not in os.fspath(path)


def check_supported(path: PathLike, flag: str = '--workdir') -> None:
  """The one rule for every path a user gives (`flag` names where it was given): a local path
  or `gs://BUCKET/...`; UnsupportedScheme (one line) for any other scheme (`s3://`, `az://`,
  `http://`, `file://`, ...) or a gs:// URI without a bucket. Reads nothing."""
  text = os.fspath(path)
  if is_local(text):
    return
  scheme = text.split('://', 1)[0]
  if scheme != 'gs' or not re.match(r'gs://[^/]+', text):
    what = 'names no bucket' if scheme == 'gs' else f'{scheme}:// is not supported'
    raise UnsupportedScheme(
        f'{_where(flag, text)}: {what}; give a local path or a gs://BUCKET/... URI (the only '
        'object store sdd_jax can write checkpoints to)')


def store_wait_s() -> float:
  """How long `check_store` waits for an object store to answer: `SDD_JAX_STORE_WAIT_S`
  seconds, else DEFAULT_STORE_WAIT_S."""
  text = os.environ.get(STORE_WAIT_ENV, '').strip()
  if not text:
    return DEFAULT_STORE_WAIT_S
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not (value > 0 and math.isfinite(value)):
    raise StoreError(f'{STORE_WAIT_ENV}={text!r}: must be a number of seconds > 0 (the wait for '
                     f'an object store to answer; unset: {DEFAULT_STORE_WAIT_S:g})')
  return value


def _where(flag: str, text: str) -> str:
  """'--out gs://b/x', 'config.model.init_from=gs://b/x', or the path alone."""
  return f'{flag}{"" if not flag or flag.endswith("=") else " "}{text}'


def _cause(error: BaseException) -> str:
  """`Type: first line of the message` (gcsfs's messages span lines)."""
  lines = str(error).strip().splitlines()
  return f'{type(error).__name__}: {lines[0]}' if lines else type(error).__name__


def check_store(path: PathLike, flag: str = '--workdir') -> None:
  """`check_supported`, then, for a gs:// path, one question to the store (a one-object listing
  of the path's prefix), repeated while it fails in a way worth retrying, for at most
  `store_wait_s()`. StoreError (one line) for a missing bucket, a refusal or no answer."""
  check_supported(path, flag)
  text = os.fspath(path)
  if is_local(text):
    return
  import fsspec.asyn  # pylint: disable=import-outside-toplevel
  from gcsfs import retry  # pylint: disable=import-outside-toplevel
  bucket, _, prefix = text[len('gs://'):].partition('/')
  wait_s = store_wait_s()
  fs = fsspec.filesystem('gs')
  # One request per try: gcsfs's own `_request` retries six times over ~36 s.
  request = type(fs)._request  # pylint: disable=protected-access
  request = getattr(request, '__wrapped__', request)
  deadline, delay = time.monotonic() + wait_s, 0.1
  while True:
    try:
      fsspec.asyn.sync(fs.loop, request, fs, 'GET', 'b/{}/o', bucket, prefix=prefix,
                       maxResults=1, timeout=max(deadline - time.monotonic(), 0.01))
      return
    except FileNotFoundError:
      raise StoreError(f'{_where(flag, text)}: the bucket gs://{bucket} does not exist; create it '
                       f'(gcloud storage buckets create gs://{bucket}) or give another bucket'
                       ) from None
    except Exception as e:  # pylint: disable=broad-except
      if not isinstance(e, TimeoutError) and not retry.is_retriable(e):
        raise StoreError(f'{_where(flag, text)}: the object store refused ({_cause(e)}); check the '
                         'credentials and the bucket\'s permissions') from None
      cause = e
    left = deadline - time.monotonic()
    if left <= 0:
      where = getattr(fs, '_location', None) or 'GCS'
      raise StoreError(
          f'{_where(flag, text)}: the object store at {where} did not answer within {wait_s:g} s '
          f'({_cause(cause)}); check the network (or STORAGE_EMULATOR_HOST), or wait longer '
          f'with {STORE_WAIT_ENV}=<seconds>')
    time.sleep(min(delay, left))
    delay = min(2 * delay, 2.0)


@contextlib.contextmanager
def store_errors(path: PathLike, flag: str = '--workdir'):
  """Inside: an error of the object store's clients (gcsfs, aiohttp, fsspec, google.auth, an
  OSError) on the gs:// `path` becomes StoreError, one line naming `path` and the cause. Local
  paths pass their errors on unchanged."""
  if is_local(path):
    yield
    return
  import aiohttp  # pylint: disable=import-outside-toplevel
  from gcsfs import retry  # pylint: disable=import-outside-toplevel
  from google.auth import exceptions as auth_exceptions  # pylint: disable=import-outside-toplevel
  try:
    yield
  except (OSError, aiohttp.ClientError, retry.HttpError, auth_exceptions.GoogleAuthError) as e:
    raise StoreError(f'{_where(flag, os.fspath(path))}: the object store failed ({_cause(e)}); '
                     'check the network, the bucket and its permissions, then run again') from None


def path(workdir: PathLike) -> epath.Path:
  """`workdir` as an epath: local paths made absolute, URIs kept as they are."""
  text = os.fspath(workdir)
  return epath.Path(os.path.abspath(text) if is_local(text) else text)


def write_text(target: epath.Path, text: str) -> None:
  """Writes `target` whole: a local file through `<name>.tmp` and a rename, an object in place
  (object writes are atomic)."""
  if not is_local(target):
    with store_errors(target, ''):
      target.write_text(text)
    return
  tmp = os.fspath(target) + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, os.fspath(target))


def write_bytes(target: epath.Path, data: bytes) -> None:
  """`write_text` for bytes."""
  if not is_local(target):
    with store_errors(target, ''):
      target.write_bytes(data)
    return
  tmp = os.fspath(target) + '.tmp'
  with open(tmp, 'wb') as f:
    f.write(data)
  os.replace(tmp, os.fspath(target))


def join(root: PathLike, *names: str) -> str:
  """`root/names...` as text: local paths as `os.path.join` gives them, URIs joined with '/'."""
  text = os.fspath(root)
  if is_local(text):
    return os.path.join(text, *names)
  return '/'.join([text.rstrip('/'), *names])


def normalize(root: PathLike) -> str:
  """`root` without `.` / `..` / trailing separators (`os.path.normpath` would turn `gs://b`
  into `gs:/b`)."""
  text = os.fspath(root)
  return os.path.normpath(text) if is_local(text) else text.rstrip('/')


def relative_link(target: PathLike, start: PathLike) -> str:
  """How a markdown file in folder `start` links to `target`: a relative path when both are on
  the same filesystem, else `target` in full."""
  target, start = os.fspath(target), os.fspath(start)
  if is_local(target) and is_local(start):
    return os.path.relpath(target, start).replace(os.sep, '/')
  prefix = start.rstrip('/') + '/'
  return target[len(prefix):] if target.startswith(prefix) else target


def walk(root: PathLike):
  """`os.walk(root)` for local folders and object-store prefixes: (folder, dirnames, filenames)
  top-down; as with os.walk, the caller may prune `dirnames` in place. Folder texts are joined
  by hand (epath's own walk drops the `gs://`)."""
  text = os.fspath(root)
  if is_local(text):
    yield from os.walk(text)
    return
  folder = epath.Path(text)
  try:
    entries = sorted(folder.iterdir(), key=lambda p: p.name)
  except (FileNotFoundError, NotADirectoryError):
    return
  dirs = [p.name for p in entries if (folder / p.name).is_dir()]
  files = [p.name for p in entries if p.name not in dirs]
  yield text, dirs, files
  for name in dirs:
    yield from walk(join(text, name))
