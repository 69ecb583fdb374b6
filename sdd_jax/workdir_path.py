"""Where a workdir lives: a local folder or an object-store prefix (`gs://bucket/run`).

Every read and write of a workdir goes through `etils.epath`, which reaches local files through
`os` and `gs://` through fsspec's gcsfs (orbax writes the arrays through TensorStore's own GCS
driver). `path` keeps local paths absolute, as before, and URIs as they are.

`s3://` is refused up front (`check_supported`): orbax 0.12's TensorStore path builder turns
`s3://` into `s3:/`, so array checkpoints cannot be written there.

gcsfs caches folder listings by default; TensorStore writes the checkpoint arrays behind its
back, and other processes write the same workdir, so a cached listing would hide their objects
(a resumed run's checkpoints, a record's files). The cache is switched off for every gs://
filesystem fsspec creates (orbax's included): each listing asks the store.

On an object store, writes of one object are atomic already, so `write_text` writes in place; a
local file is written to `<name>.tmp` and renamed over the old one, as before.
"""
import os
from typing import Union

import fsspec
from etils import epath

from sdd_jax.errors import UserError

for _protocol in ('gcs', 'gs'):  # before any gs:// filesystem exists: fsspec caches instances
  fsspec.config.conf.setdefault(_protocol, {})['use_listings_cache'] = False

PathLike = Union[str, os.PathLike]


class UnsupportedWorkdir(UserError):
  """A workdir URI on a store the checkpoints cannot be written to."""


def is_local(path: PathLike) -> bool:
  """Whether `path` is on a local filesystem (no `scheme://`)."""
  return '://' not in os.fspath(path)


def check_supported(path: PathLike) -> None:
  """Raises UnsupportedWorkdir for a workdir URI whose arrays orbax cannot write."""
  if os.fspath(path).startswith('s3://'):
    raise UnsupportedWorkdir(f'--workdir {os.fspath(path)}: s3:// workdirs are not supported (orbax '
                       '0.12 cannot write array checkpoints to S3); use a gs:// or local workdir')


def path(workdir: PathLike) -> epath.Path:
  """`workdir` as an epath: local paths made absolute, URIs kept as they are."""
  text = os.fspath(workdir)
  return epath.Path(os.path.abspath(text) if is_local(text) else text)


def write_text(target: epath.Path, text: str) -> None:
  """Writes `target` whole: a local file through `<name>.tmp` and a rename, an object in place
  (object writes are atomic)."""
  if not is_local(target):
    target.write_text(text)
    return
  tmp = os.fspath(target) + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, os.fspath(target))


def write_bytes(target: epath.Path, data: bytes) -> None:
  """`write_text` for bytes."""
  if not is_local(target):
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
