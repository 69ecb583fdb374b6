"""The lease of an object-store workdir, on the GCS emulator (tests/object_store.py)."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from etils import epath

from sdd_jax.workdir import lease
from sdd_jax.workdir import claim as workdir
from tests import workdirs


def test_a_fresh_lease_refuses_a_second_run_naming_holder_and_expiry(gcs_root):
  first = lease.Lease(gcs_root)
  first.acquire()
  try:
    stored = json.loads((epath.Path(gcs_root) / 'lease.json').read_text())
    assert stored['holder'] == first.holder and stored['pid'] > 0 and stored['host']
    assert stored['expires'] - stored['heartbeat'] == lease.STALE_AFTER_S == 300
    expiry = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(stored['expires']))
    with pytest.raises(lease.WorkdirInUse) as refused:
      lease.Lease(gcs_root).acquire()
    message = str(refused.value)
    assert '\n' not in message and first.holder in message and expiry in message
    # The training claim refuses in the same way, before writing config.json.
    with pytest.raises(lease.WorkdirInUse):
      with workdir.Claim(gcs_root, workdirs.tiny_config()):
        pass
    assert not (epath.Path(gcs_root) / 'config.json').exists()
  finally:
    first.release()
  assert not (epath.Path(gcs_root) / 'lease.json').exists()
  with workdir.Claim(gcs_root, workdirs.tiny_config()):  # released: the next run claims it
    assert json.loads((epath.Path(gcs_root) / 'lease.json').read_text())['pid'] > 0
  assert not (epath.Path(gcs_root) / 'lease.json').exists()


def test_a_stale_lease_is_taken_over(gcs_root):
  dead = {'holder': 'pid 1 on gone', 'host': 'gone', 'pid': 1, 'heartbeat': time.time() - 400,
          'expires': time.time() - 100}
  (epath.Path(gcs_root) / 'lease.json').write_text(json.dumps(dead))
  taker = lease.Lease(gcs_root)
  taker.acquire()
  try:
    assert taker.read()['holder'] == taker.holder
  finally:
    taker.release()


def test_heartbeats_move_the_expiry_forward(gcs_root):
  holder = lease.Lease(gcs_root, stale_after_s=5, heartbeat_s=0.1)
  holder.acquire()
  try:
    first = holder.read()['heartbeat']
    deadline = time.time() + 5
    while holder.read()['heartbeat'] == first and time.time() < deadline:
      time.sleep(0.05)
    later = holder.read()
    assert later['heartbeat'] > first and later['expires'] == pytest.approx(
        later['heartbeat'] + 5)
  finally:
    holder.release()


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(gcs_root):
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()  # a pid that no longer exists (reaped)
  now = time.time()
  record = {'holder': f'pid {dead.pid} on {socket.gethostname()} (x)', 'host':
            socket.gethostname(), 'pid': dead.pid, 'heartbeat': now, 'expires': now + 300}
  (epath.Path(gcs_root) / 'lease.json').write_text(json.dumps(record))
  taker = lease.Lease(gcs_root)
  taker.acquire()  # fresh by its expiry, but its process is gone
  taker.release()
  # The same record naming a live process (this one) or another host still refuses.
  for host, pid in ((socket.gethostname(), os.getpid()), ('elsewhere', dead.pid)):
    (epath.Path(gcs_root) / 'lease.json').write_text(json.dumps({**record, 'host': host,
                                                                 'pid': pid}))
    with pytest.raises(lease.WorkdirInUse):
      lease.Lease(gcs_root).acquire()
