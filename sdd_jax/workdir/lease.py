"""Claiming an object-store workdir: a lease object instead of the kernel lock.

An object store has no `flock`, so process 0 of a run on a `gs://` workdir writes
`<workdir>/lease.json` = {holder, host, pid, heartbeat (unix time), expires (unix time)} and
rewrites it every HEARTBEAT_S seconds from a daemon thread while the run goes on. A lease whose
`expires` has passed is stale: its run died (or its host lost the network) and a new run takes
it over. Staleness time: STALE_AFTER_S = 300 s after the last heartbeat (five missed
heartbeats), so a killed run blocks its workdir for at most five minutes. A lease written on
this same host by a process that no longer exists (a run killed with SIGKILL and restarted on
the same machine) is stale at once. A second run refuses while the lease is fresh, in one line
naming the holder and when the lease expires.

Limit: the check and the write are two requests (the emulator the tests use has no conditional
writes), so two runs started within the same second could both take a stale lease; the lease
guards against the common mistake of a second run on a busy workdir, not a deliberate race.
"""
import datetime
import json
import os
import socket
import threading
import time
from typing import Optional

from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError

LEASE_FILE = 'lease.json'
HEARTBEAT_S = 60.0
STALE_AFTER_S = 300.0


class WorkdirInUse(UserError):
  """Another run holds the workdir's lease."""


def _when(unix_time: float) -> str:
  return datetime.datetime.fromtimestamp(unix_time, datetime.timezone.utc).strftime(
      '%Y-%m-%d %H:%M:%S UTC')


def _dead_here(lease: dict) -> bool:
  """Whether `lease` was written on this host by a process that has exited."""
  if lease.get('host') != socket.gethostname() or not isinstance(lease.get('pid'), int):
    return False
  try:
    os.kill(lease['pid'], 0)
  except ProcessLookupError:
    return True
  except OSError:  # e.g. another user's live process
    return False
  return False


class Lease:
  """The lease of one run on `workdir`: `acquire` (or refuse), heartbeats, `release`."""

  def __init__(self, workdir: str, stale_after_s: float = STALE_AFTER_S,
               heartbeat_s: float = HEARTBEAT_S):
    self.path = workdir_path.path(workdir) / LEASE_FILE
    self.holder = f'pid {os.getpid()} on {socket.gethostname()} ({os.urandom(4).hex()})'
    self._stale_after_s = stale_after_s
    self._heartbeat_s = heartbeat_s
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  def read(self) -> Optional[dict]:
    """The lease object, or None when there is none (or it cannot be read)."""
    try:
      return json.loads(self.path.read_text())
    except (OSError, ValueError):
      return None

  def _write(self) -> None:
    now = time.time()
    self.path.write_text(json.dumps({
        'holder': self.holder, 'host': socket.gethostname(), 'pid': os.getpid(),
        'heartbeat': now, 'expires': now + self._stale_after_s}))

  def acquire(self) -> None:
    """Takes the lease (a missing or stale one); raises WorkdirInUse while another run's lease
    is fresh."""
    current = self.read()
    if current and current.get('holder') != self.holder and \
        float(current.get('expires', 0)) > time.time() and not _dead_here(current):
      raise WorkdirInUse(f'--workdir {self.path.parent} is in use by {current.get("holder")} '
                         f'(lease expires {_when(float(current["expires"]))} unless renewed); '
                         'wait for it or use another --workdir')
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._write()
    self._thread = threading.Thread(target=self._beat, name='sdd_jax lease', daemon=True)
    self._thread.start()

  def _beat(self) -> None:
    while not self._stop.wait(self._heartbeat_s):
      try:
        self._write()
      except Exception:  # pylint: disable=broad-except
        pass  # a missed heartbeat; the lease stays fresh for STALE_AFTER_S

  def release(self) -> None:
    """Stops the heartbeats and removes the lease if it is still this run's."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    current = self.read()
    if current and current.get('holder') == self.holder:
      self.path.unlink()
