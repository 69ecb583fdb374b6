"""Claiming a workdir: one run at a time, and only the run of the config that made it.

- A lock (`<workdir>/.lock`, `fcntl.flock`, held by process 0 for the whole run) makes a second
  run on a workdir in use fail at once; the kernel drops the lock when its process dies, so a
  stale lock from a killed run never blocks a restart.
- `config.json` is written once; a later run whose config differs (beyond fields that do not
  change the training) refuses to start, naming the first differences.
"""
import fcntl
import json
import os
from typing import Dict, Optional

import jax
import ml_collections
from jax.experimental import multihost_utils
from sdd_jax.errors import UserError

# Fields that may change between a run and its resumption (they do not change the training);
# a name ending in '.' covers the whole section.
RESUMABLE_FIELDS = ('log_every_steps', 'checkpoint_every_epochs', 'max_to_keep',
                    'data.prefetch', 'data.num_workers', 'evals.', 'probe.')


class WorkdirError(UserError):
  """The workdir cannot be used for this config."""


def _flatten(tree, prefix='') -> Dict[str, object]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _resumable(field: str) -> bool:
  return field in RESUMABLE_FIELDS or field.startswith(tuple(
      f for f in RESUMABLE_FIELDS if f.endswith('.')))


def check_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Raises WorkdirError if `workdir` cannot hold this config's run (reads only)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir {workdir} is a file; give a directory path')
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  try:
    with open(path, encoding='utf-8') as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise WorkdirError(f'{path} cannot be read ({type(e).__name__}); use a new --workdir') from None
  old, new = _flatten(saved), _flatten(json.loads(config.to_json()))
  differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and not _resumable(k))
  if differ:
    shown = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in differ[:3])
    raise WorkdirError(f'--workdir {workdir} holds a run of a different config ({shown}); '
                       'use a new --workdir, or the same config to resume')


class Claim:
  """Context manager: checks, locks and records the workdir for the duration of a run."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    self.workdir = workdir
    self.config = config
    self._lock_file: Optional[object] = None

  def __enter__(self):
    check_config(self.workdir, self.config)
    if jax.process_index() == 0:
      try:
        os.makedirs(self.workdir, exist_ok=True)
        self._lock_file = open(os.path.join(self.workdir, '.lock'), 'a+', encoding='utf-8')
      except OSError as e:
        raise WorkdirError(f'--workdir {self.workdir} cannot be written ({e.strerror}); give a '
                           'writable directory') from None
      try:
        fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        self._lock_file.seek(0)
        holder = self._lock_file.read().strip() or 'another process'
        self._lock_file.close()
        self._lock_file = None
        raise WorkdirError(f'--workdir {self.workdir} is in use by {holder}; wait for it or '
                           'use another --workdir') from None
      self._lock_file.seek(0)
      self._lock_file.truncate()
      self._lock_file.write(f'pid {os.getpid()} on {os.uname().nodename}\n')
      self._lock_file.flush()
      path = os.path.join(self.workdir, 'config.json')
      if not os.path.exists(path):
        with open(path + '.tmp', 'w', encoding='utf-8') as f:
          json.dump(json.loads(self.config.to_json()), f, indent=2, sort_keys=True)
        os.replace(path + '.tmp', path)
    multihost_utils.sync_global_devices('sdd_jax workdir claimed')
    return self

  def __exit__(self, *exc):
    if self._lock_file is not None:
      self._lock_file.seek(0)
      self._lock_file.truncate()
      fcntl.flock(self._lock_file, fcntl.LOCK_UN)
      self._lock_file.close()
      self._lock_file = None
    return False
