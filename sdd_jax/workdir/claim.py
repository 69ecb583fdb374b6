"""Claiming a workdir: one run at a time, and only the run of the config that made it.

- On an object store (`gs://`), a lease object instead (`lease.py`).
- A lock (`<workdir>/.lock`, `fcntl.flock`, held by process 0 for the whole run) makes a second
  run on a workdir in use fail at once; the kernel drops the lock when its process dies, so a
  stale lock from a killed run never blocks a restart.
- `config.json` is written once; a later run whose config differs (beyond fields that do not
  change the training) refuses to start, naming the first differences. A workdir that holds
  checkpoints but no `config.json` is accepted only if its checkpoints' records carry this
  config's digest (`config_digest`).
- A task may give `resolve` (dict -> dict: classification fills in each method's defaults,
  `methods.resolve_config`): `config.json` and the digest hold the resolved form, and both sides
  are resolved before they are compared, so a `config.json` written before (as the config was
  written) still resumes; a checkpoint record may carry either digest.
- A path too long for the file system is refused before anything is written.
"""
import fcntl
import hashlib
import json
import os
from typing import Callable, Dict, Optional

import jax
import ml_collections
from jax.experimental import multihost_utils
from sdd_jax.workdir import records as checkpoint_record
from sdd_jax.workdir import lease as lease_lib
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError

# Fields that may change between a run and its resumption (they do not change the training);
# a name ending in '.' covers the whole section.
RESUMABLE_FIELDS = ('log_every_steps', 'checkpoint_every_epochs', 'max_to_keep',
                    'data.prefetch', 'data.num_workers', 'evals.', 'probe.', 'profile_steps',
                    'model.init_from', 'model.init_from_skip_head')  # read at step 0 only


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


# The longest path the run writes below the workdir, e.g.
# 'unreadable_checkpoints/1234567.orbax-checkpoint-tmp/default/ocdbt.process_0/d/<32 hex>', with
# room to spare: a workdir path must leave this much of the file system's PATH_MAX.
LONGEST_INSIDE = 160


Resolve = Callable[[dict], dict]


def _unresolved(config: dict) -> dict:
  return config


def config_json(config, resolve: Resolve = _unresolved) -> dict:
  """The JSON dict of a ConfigDict (or of a dict read from config.json), resolved."""
  config = config if isinstance(config, dict) else json.loads(config.to_json())
  return json.loads(json.dumps(resolve(config)))  # tuples of the defaults as JSON lists


def config_digest(config, resolve: Resolve = _unresolved) -> str:
  """sha256 of the training-relevant fields (those `check_config` compares: all but
  RESUMABLE_FIELDS) of a ConfigDict or of its JSON dict, resolved."""
  flat = _flatten(config_json(config, resolve))
  kept = {k: v for k, v in flat.items() if not _resumable(k)}
  return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def check_path(workdir: str) -> None:
  """Raises WorkdirError if `workdir` (or what a run writes inside it) would be a path too
  long for its file system: a name over NAME_MAX, or a total over PATH_MAX. Object-store
  URIs: gs:// only, its bucket there and answering (`workdir_path.check_store`)."""
  workdir_path.check_store(workdir, '--workdir')
  if not workdir_path.is_local(workdir):
    return
  path = os.path.abspath(workdir)
  existing = path
  while not os.path.isdir(existing):
    existing = os.path.dirname(existing)
  try:
    name_max = os.pathconf(existing, 'PC_NAME_MAX')
    path_max = os.pathconf(existing, 'PC_PATH_MAX')
  except (OSError, ValueError):
    name_max, path_max = 255, 4096
  longest = max(path.split(os.sep), key=len)
  if len(longest.encode()) > name_max:
    raise WorkdirError(f'--workdir has a name of {len(longest.encode())} bytes ({longest[:20]}...); '
                       f'this file system allows {name_max}: give a shorter --workdir')
  if len(path.encode()) + LONGEST_INSIDE > path_max:
    raise WorkdirError(f'--workdir is a path of {len(path.encode())} bytes; runs need it under '
                       f'{path_max - LONGEST_INSIDE} (PATH_MAX {path_max}): give a shorter '
                       '--workdir')


def _check_checkpoints_without_config(workdir: str, config, resolve: Resolve) -> None:
  """A workdir with checkpoints but no config.json: every checkpoint whose record is readable
  must carry this config's digest (resolved, or as written by a run before resolution), and at
  least one must."""
  directory = workdir_path.path(workdir) / 'checkpoints'
  steps = sorted((int(p.name) for p in directory.iterdir() if p.name.isdigit()), reverse=True) \
      if directory.is_dir() else []
  if not steps:
    return
  digests, matched = {config_digest(config, resolve), config_digest(config)}, False
  for step in steps:
    try:
      stored = checkpoint_record.read(directory / str(step))['config_digest']
    except checkpoint_record.Unverifiable:
      continue
    if stored not in digests:
      raise WorkdirError(f'--workdir {workdir} has no config.json and its checkpoint {step} was '
                         'trained with a different config; use a new --workdir, or the '
                         'config that made it')
    matched = True
  if not matched:
    raise WorkdirError(f'--workdir {workdir} has no config.json and none of its checkpoints '
                       f'{steps} records its config; use a new --workdir')


def read_config_json(path: str) -> dict:
  """The config a run saved at `path` (its `config.json`) as a dict; WorkdirError (one line)
  when the file cannot be read or is not a JSON object."""
  try:
    saved = json.loads(workdir_path.path(path).read_text())
    if not isinstance(saved, dict):
      raise ValueError('not a JSON object')
  except (OSError, ValueError) as e:
    raise WorkdirError(f'{path} cannot be read ({type(e).__name__}); it is written by train.py: '
                       'restore it, or use a new --workdir') from None
  return saved


def check_config(workdir: str, config: ml_collections.ConfigDict,
                 resolve: Resolve = _unresolved) -> None:
  """Raises WorkdirError if `workdir` cannot hold this config's run (reads only); the saved
  config and this one are compared resolved."""
  check_path(workdir)
  with workdir_path.store_errors(workdir, '--workdir'):
    _check_config(workdir, config, resolve)


def _check_config(workdir: str, config: ml_collections.ConfigDict,
                  resolve: Resolve) -> None:
  directory = workdir_path.path(workdir)
  if directory.exists() and not directory.is_dir():
    raise WorkdirError(f'--workdir {workdir} is a file; give a directory path')
  path = directory / 'config.json'
  if not path.exists():
    _check_checkpoints_without_config(workdir, config, resolve)
    return
  old = _flatten(config_json(read_config_json(path), resolve))
  new = _flatten(config_json(config, resolve))
  differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and not _resumable(k))
  if differ:
    shown = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in differ[:3])
    raise WorkdirError(f'--workdir {workdir} holds a run of a different config ({shown}); '
                       'use a new --workdir, or the same config to resume')


class Claim:
  """Context manager: checks, locks and records the workdir for the duration of a run."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict,
               resolve: Resolve = _unresolved):
    self.workdir = workdir
    self.config = config
    self._resolve = resolve
    self._lock_file: Optional[object] = None
    self._lease: Optional[lease_lib.Lease] = None

  def __enter__(self):
    check_config(self.workdir, self.config, self._resolve)
    if jax.process_index() == 0 and not workdir_path.is_local(self.workdir):
      directory = workdir_path.path(self.workdir)
      with workdir_path.store_errors(self.workdir, '--workdir'):
        self._lease = lease_lib.Lease(self.workdir)
        self._lease.acquire()  # an object store has no flock: lease.py
        try:
          self._write_config(directory / 'config.json')
        except BaseException:
          self.__exit__()  # __exit__ is not called when __enter__ raises
          raise
    elif jax.process_index() == 0:
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
      self._write_config(workdir_path.path(self.workdir) / 'config.json')
    multihost_utils.sync_global_devices('sdd_jax workdir claimed')
    return self

  def _write_config(self, path) -> None:
    if not path.exists():
      workdir_path.write_text(path, json.dumps(config_json(self.config, self._resolve), indent=2,
                                               sort_keys=True))

  def __exit__(self, *exc):
    if self._lease is not None:
      self._lease.release()
      self._lease = None
    if self._lock_file is not None:
      self._lock_file.seek(0)
      self._lock_file.truncate()
      fcntl.flock(self._lock_file, fcntl.LOCK_UN)
      self._lock_file.close()
      self._lock_file = None
    return False
