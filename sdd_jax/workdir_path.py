"""Where a workdir lives: a local folder or an object-store prefix (`gs://bucket/run`).

Every read and write of a workdir goes through `etils.epath`, which reaches local files through
`os` and `gs://` through fsspec's gcsfs (orbax writes the arrays through TensorStore's own GCS
driver). `path` keeps local paths absolute, as before, and URIs as they are.

`s3://` is refused up front (`check_supported`): orbax 0.12's TensorStore path builder turns
`s3://` into `s3:/`, so array checkpoints cannot be written there.

On an object store, writes of one object are atomic already, so `write_text` writes in place; a
local file is written to `<name>.tmp` and renamed over the old one, as before.
"""
import os
from typing import Union

from etils import epath

from sdd_jax.errors import UserError

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
