"""The record beside each checkpoint: `checkpoints/<step>/sdd_jax_record.json`.

Written by process 0 once orbax has committed the step folder (so after the asynchronous save),
it holds:

- `files`: the sha256 of every other file of the step folder, so a flipped bit in any array,
  metadata or manifest file makes the checkpoint unreadable instead of silently restored;
- `config_digest`: the digest of the training-relevant config (`workdir.config_digest`), so a
  workdir that lost its `config.json` can still tell whose checkpoints it holds;
- `run`: the host-side state of the run that the reports need and the arrays do not hold (the
  training-loss window not yet logged, the last logged training means, the images/s clock, the
  FLOPs per step), so a resumed or re-run workdir writes the same `summary.json`;
- `record_sha256`: the sha256 of the record's own other fields.

Rules: a step folder whose record or files do not match is damaged (`Unverifiable`): the restore
falls back to the previous checkpoint and sets it aside, and refuses with one line if none is
left. A step folder without a record (`Unfinished`: a kill between orbax's commit and the
record, or a checkpoint of an sdd_jax before records) is a save that did not finish: never
restored (its run state, hence an exact summary, is missing), set aside like orbax's own
temporary folders, and the run resumes from the previous checkpoint (or the start).
"""
import hashlib
import json
from typing import Any, Dict, Optional

from etils import epath

from sdd_jax.workdir import paths as workdir_path

RECORD_FILE = 'sdd_jax_record.json'


class Unverifiable(Exception):
  """A step folder's bytes do not match its record, or its record is damaged."""


class Unfinished(Unverifiable):
  """A step folder has no record: its save did not finish."""


def _sha256(path: epath.Path) -> str:
  digest = hashlib.sha256()
  with path.open('rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def _canonical(fields: Dict[str, Any]) -> bytes:
  return json.dumps(fields, sort_keys=True, allow_nan=False).encode()


def _files(step_dir) -> Dict[str, str]:
  """{path relative to `step_dir`: sha256} of every file but the record."""
  hashes = {}
  for relative, path in _walk(epath.Path(step_dir), ''):
    if relative != RECORD_FILE and not relative.startswith(RECORD_FILE):
      hashes[relative] = _sha256(path)
  return dict(sorted(hashes.items()))


def _walk(folder: epath.Path, prefix: str):
  """(relative path, path) of every file under `folder` (names joined by hand: epath's own
  walk drops the `gs://` of object-store paths)."""
  for entry in folder.iterdir():
    path = folder / entry.name
    if path.is_dir():
      yield from _walk(path, f'{prefix}{entry.name}/')
    else:
      yield f'{prefix}{entry.name}', path


def write(step_dir: str, *, config_digest: Optional[str], run: Dict[str, Any]) -> None:
  """Hashes the committed `step_dir` and writes its record (temporary file, then rename)."""
  fields = {'config_digest': config_digest, 'files': _files(step_dir), 'run': run}
  record = {**fields, 'record_sha256': hashlib.sha256(_canonical(fields)).hexdigest()}
  workdir_path.write_text(epath.Path(step_dir) / RECORD_FILE,
                          json.dumps(record, indent=1, sort_keys=True, allow_nan=False))


def read(step_dir: str) -> Dict[str, Any]:
  """The record of `step_dir`, its own digest checked (the files are not hashed: see
  `verify`); raises Unverifiable."""
  try:
    record = json.loads((epath.Path(step_dir) / RECORD_FILE).read_bytes().decode('utf-8'))
    fields = {k: record[k] for k in ('config_digest', 'files', 'run')}
    ok = hashlib.sha256(_canonical(fields)).hexdigest() == record['record_sha256']
  except FileNotFoundError:
    raise Unfinished(f'it has no {RECORD_FILE} (its save did not finish)') from None
  except (OSError, ValueError, TypeError, KeyError) as e:
    raise Unverifiable(f'its {RECORD_FILE} cannot be read ({type(e).__name__})') from None
  if not ok or not isinstance(fields['files'], dict) or not isinstance(fields['run'], dict):
    raise Unverifiable(f'its {RECORD_FILE} is damaged')
  return fields


def verify(step_dir: str) -> Dict[str, Any]:
  """The record of `step_dir` after checking every file it lists against its sha256;
  raises Unverifiable naming the first file that is missing or differs."""
  record = read(step_dir)
  for relative, expected in record['files'].items():
    path = epath.Path(step_dir) / relative
    try:
      actual = _sha256(path)
    except OSError:
      raise Unverifiable(f'{relative} is missing') from None
    if actual != expected:
      raise Unverifiable(f'{relative} differs from the sha256 recorded at save time')
  return record


def recorded_steps(directory) -> list:
  """The steps under `directory` (a workdir's `checkpoints/`) whose record is written, so
  orbax has committed them and their save finished: what a reader beside a running training
  may restore (a step folder without a record may still be written). Sorted; [] when
  `directory` does not exist. A step that `max_to_keep` removes after this listing is gone
  when read: readers must expect that."""
  directory = epath.Path(directory)
  if not directory.is_dir():
    return []
  steps = [int(p.name) for p in directory.iterdir() if p.name.isdigit()]
  return sorted(s for s in steps if (directory / str(s) / RECORD_FILE).exists())
