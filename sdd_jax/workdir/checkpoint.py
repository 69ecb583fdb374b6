"""Checkpoints with orbax's CheckpointManager: asynchronous saves, `max_to_keep`, a record of
each checkpoint's bytes and run state (`checkpoint_record`), and a fallback to the previous
checkpoint when the latest one cannot be read or verified."""
import logging
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import orbax.checkpoint as ocp
from etils import epath

from sdd_jax.workdir import records as checkpoint_record
from sdd_jax.workdir import shapes as checkpoint_shapes
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError


class CheckpointError(UserError):
  """No checkpoint of the workdir could be restored."""


class Checkpointer:
  """Saves and restores the train state under `<workdir>/checkpoints/<step>`.

  Each save's record (`checkpoint_record`: the sha256 of every file, `config_digest`, the
  caller's `run` dict) is written once orbax has committed the step folder: `commit_records`
  (cheap; the trainer calls it every step) writes those of finished saves, `close` waits for
  the last one. A restore verifies the bytes before orbax reads any of them, so damaged
  arrays never reach tensorstore (whose reads, cut short, print background tracebacks).
  """

  def __init__(self, workdir: str, max_to_keep: int, read_only: bool = False,
               config_digest: Optional[str] = None):
    """`read_only=True` (evaluation of a workdir that may still be training): nothing is
    created, cleaned up or set aside."""
    self.directory = workdir_path.path(workdir) / 'checkpoints'
    self._max_to_keep = max_to_keep
    self._read_only = read_only
    self._config_digest = config_digest
    self._pending: Dict[int, dict] = {}  # step -> run dict, saves whose record is not written
    self._lock = threading.Lock()
    self.restored_run: Optional[dict] = None  # the `run` of the step `restore` returned
    self._verified: Dict[int, Any] = {}  # step -> its record, or why it is unreadable
    self._manager = self._create_manager()

  def _create_manager(self) -> ocp.CheckpointManager:
    # cleanup_tmp_directories: a save cut short by SIGKILL leaves a temporary folder that
    # orbax never commits; it is removed on the next start.
    # Read-only: the options orbax would otherwise reset with a warning line each.
    options = ocp.CheckpointManagerOptions(max_to_keep=None if self._read_only else
                                           self._max_to_keep,
                                           save_interval_steps=0 if self._read_only else 1,
                                           create=not self._read_only,
                                           enable_async_checkpointing=True,
                                           cleanup_tmp_directories=not self._read_only,
                                           read_only=self._read_only)
    return ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, state: Any, run: Optional[dict] = None) -> None:
    """Starts an asynchronous save of `state` at `state.step` (a no-op if it exists); `run`
    (JSON-able, host-side) goes into its record."""
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    self.commit_records()
    self._manager.save(step, args=ocp.args.StandardSave(state))
    with self._lock:
      self._pending[step] = dict(run or {})

  def commit_records(self, wait: bool = False) -> None:
    """Writes the records of the saves orbax has finished (all of them after waiting, with
    `wait=True`)."""
    if not self._pending:
      return
    if wait:
      self._manager.wait_until_finished()
    elif self._manager.is_saving_in_progress():
      return
    with self._lock:
      pending, self._pending = self._pending, {}
    for step, run in sorted(pending.items()):
      step_dir = self.directory / str(step)
      if jax.process_index() == 0 and step_dir.is_dir():  # not removed by max_to_keep
        checkpoint_record.write(step_dir, config_digest=self._config_digest, run=run)

  def verified(self, step: int) -> bool:
    """Whether the bytes of checkpoint `step` match its record."""
    return not isinstance(self._verify(step), Exception)

  def _verify(self, step: int):
    """The record of `step` (its files hashed once per Checkpointer), or the
    `checkpoint_record.Unverifiable` that says why it cannot be used."""
    if step not in self._verified:
      try:
        self._verified[step] = checkpoint_record.verify(self.directory / str(step))
      except checkpoint_record.Unverifiable as e:
        self._verified[step] = e
    return self._verified[step]

  def _no_checkpoint_error(self, steps, reason: str, misfit: str = '') -> CheckpointError:
    if misfit:  # the arrays are readable, but they belong to another model
      return CheckpointError(f'the checkpoints in {self.directory} hold another model than this '
                             f'config\'s{misfit}: use a new --workdir, or the config they were '
                             'trained with')
    return CheckpointError(f'no checkpoint in {self.directory} can be read (tried steps {steps})'
                           f': use a new --workdir{reason}')

  def check_readable(self) -> None:
    """Raises CheckpointError (before any model is built) when the workdir has damaged
    checkpoints and no other one matches its record."""
    steps = sorted(self._manager.all_steps(), reverse=True)
    records = {step: self._verify(step) for step in steps}
    damaged = [s for s, r in records.items() if isinstance(r, Exception)
               and not isinstance(r, checkpoint_record.Unfinished)]
    if damaged and all(isinstance(r, Exception) for r in records.values()):
      raise self._no_checkpoint_error(steps, f' (step {damaged[0]}: {records[damaged[0]]})')

  def restore(self, target: Any) -> Tuple[Optional[Any], Optional[int]]:
    """Restores the newest readable checkpoint into the structure and shardings of `target`.

    Newer checkpoints that are damaged, unfinished (`checkpoint_record`) or do not fit
    `target` are moved to `<workdir>/unreadable_checkpoints/` with a one-line warning once an
    older one restores (unfinished ones also when none is left: the run starts over). If
    checkpoints exist but none can be read, CheckpointError is raised and the workdir is left
    as it was. Returns (None, None) when the workdir has no checkpoint. `self.restored_run` is
    then the restored step's `run` dict.
    """
    abstract = None if target is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, target)

    def restore_args(step_dir):
      mismatch = (None if abstract is None
                  else checkpoint_shapes.shape_mismatch(step_dir, abstract))
      return mismatch, ocp.args.StandardRestore(abstract)

    return self._restore_newest(restore_args)

  def restore_variables(self, sharding: jax.sharding.Sharding, expected: Any = None,
                        collections: Sequence[str] = ('params', 'batch_stats'),
                        step: Optional[int] = None
                        ) -> Tuple[Optional[Dict[str, Any]], Optional[int]]:
    """{collection: tree} of `collections` of the newest readable checkpoint, each array
    placed with `sharding` (e.g. replicated over this process's mesh), whatever mesh or device
    count wrote it; the rest (optimizer, methods' state) is not read. Returns (None, None)
    when the workdir has no checkpoint, as `restore` does (with the same fallbacks).

    `expected`: the {collection: tree of arrays or ShapeDtypeStructs} this config's model has;
    a checkpoint whose arrays differ from it in shape or path does not fit, and the
    CheckpointError names the first difference. None: restored as stored. `step`: that
    checkpoint only (no fallback to an older one; (None, None) when it is not there).
    """
    def restore_args(step_dir):
      stored = checkpoint_shapes.item_metadata(step_dir)
      place = lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding)
      target = {c: jax.tree.map(place, stored[c]) for c in collections
                if jax.tree.leaves(stored.get(c, {}))}
      mismatch = None if expected is None else checkpoint_shapes.tree_mismatch(
          {c: stored.get(c, {}) for c in collections}, expected)
      return mismatch, ocp.args.PyTreeRestore(
          target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
          partial_restore=True)

    return self._restore_newest(restore_args, step)

  def _restore_newest(self, restore_args: Callable[[epath.Path], Tuple[Optional[str], Any]],
                      only: Optional[int] = None):
    """`restore`'s walk from the newest checkpoint down (or of step `only` alone):
    `restore_args(step_dir)` -> (why it does not fit or None, orbax's restore args)."""
    steps = sorted((s for s in self._manager.all_steps() if only in (None, s)), reverse=True)
    unreadable, misfit, reason = [], '', ''
    for step in steps:
      record = self._verify(step)
      if isinstance(record, Exception):
        logging.warning('checkpoint %d in %s is unreadable: %s; trying the previous one',
                        step, self.directory, record)
        if not isinstance(record, checkpoint_record.Unfinished):
          reason = reason or f' (step {step}: {record})'
        unreadable.append(step)
        continue
      try:
        mismatch, args = restore_args(self.directory / str(step))
        if mismatch:  # refused before any array is read
          logging.warning('checkpoint %d in %s does not fit this config (%s); trying the '
                          'previous one', step, self.directory, mismatch)
          misfit = misfit or f' (step {step}: {mismatch})'
          unreadable.append(step)
          continue
        restored = self._manager.restore(step, args=args)
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('checkpoint %d in %s cannot be read (%s: %s); trying the previous one',
                        step, self.directory, type(e).__name__, str(e).splitlines()[0][:200])
        reason = reason or f' (step {step}: {type(e).__name__})'
        unreadable.append(step)
        continue
      for bad in unreadable:
        self._set_aside(bad)
      self.restored_run = record['run']
      return restored, step
    if misfit or reason:
      raise self._no_checkpoint_error(steps, reason, misfit)
    for unfinished in unreadable:  # only saves that did not finish: start over
      self._set_aside(unfinished)
    return None, None

  def _set_aside(self, step: int) -> None:
    if self._read_only:
      return
    if jax.process_index() == 0:
      aside = self.directory.parent / 'unreadable_checkpoints'
      aside.mkdir(parents=True, exist_ok=True)
      target, n = aside / str(step), 1
      while target.exists():  # set aside before: keep both
        target, n = aside / f'{step}.{n}', n + 1
      (self.directory / str(step)).rename(target)
    self._manager.close()
    self._manager = self._create_manager()
    self._verified.pop(step, None)

  def close(self) -> None:
    self.commit_records(wait=True)
    self._manager.wait_until_finished()
    self._manager.close()


def read_checkpoint(workdir: str, step: Optional[int] = None) -> Any:
  """The state saved at `step` (default: the newest) as nested dicts of arrays on one local
  device, whatever mesh or process count wrote it, after verifying its bytes: for analysis,
  reports and tests."""
  directory = workdir_path.path(workdir) / 'checkpoints'
  if step is None:
    steps = [int(p.name) for p in directory.iterdir() if p.name.isdigit()]
    if not steps:
      raise CheckpointError(f'no checkpoint in {directory}')
    step = max(steps)
  step_dir = directory / str(step)
  try:
    checkpoint_record.verify(step_dir)
  except checkpoint_record.Unverifiable as e:
    raise CheckpointError(f'checkpoint {step} in {directory} is unreadable: {e}') from None
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          checkpoint_shapes.item_metadata(step_dir))
  return ocp.StandardCheckpointer().restore(step_dir / 'default', abstract)
