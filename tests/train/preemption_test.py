"""Kill anywhere: SIGKILL inside the steps and inside an asynchronous checkpoint write, restart,
and the final parameters equal an uninterrupted run's, bit for bit, and so does its summary
(every figure but the measured times). SIGTERM to a single process stops it after the step in
flight, with no collective (`sdd_jax.train.preemption`; the 2-process case is in
tests/classification/multiprocess_test.py, beside the straight 2-process run it compares with)."""
import json
import logging
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from sdd_jax.workdir import checkpoint
from sdd_jax import parallel
from sdd_jax.train import preemption
from sdd_jax.classification import trainer
from tests import workdirs
from tests.classification import trainer_test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMAND = [sys.executable, os.path.join(ROOT, 'train.py'), '--config',
           os.path.join(ROOT, 'configs', 'cifar100_resnet18_sdd.py') + ':smoke',
           '--config.num_epochs=4', '--config.optim.lr_boundaries=(2,)',
           '--config.log_every_steps=1']  # 16 steps, a checkpoint every 4
ENV = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')


def _as_a_foreground_job():
  """Ctrl-C's default disposition in the child, as a terminal's foreground job has it. A shell
  starts a background job (e.g. a CI script run with `&`) with SIGINT ignored, the children
  inherit that, and a run then rightly keeps ignoring Ctrl-C (`preemption.watch`)."""
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(workdir):
  return subprocess.Popen(COMMAND + ['--workdir', workdir], cwd=ROOT, env=ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          preexec_fn=_as_a_foreground_job)


def _kill_when(process, condition, timeout=180):
  deadline = time.time() + timeout
  while not condition():
    assert process.poll() is None, process.stderr.read()[-2000:]
    assert time.time() < deadline, 'the condition never came'
    time.sleep(0.005)
  process.send_signal(signal.SIGKILL)
  process.wait()


def test_sigkill_in_a_step_and_in_a_checkpoint_write_then_exact_resume(tmp_path,
                                                                       straight_killable_run):
  straight = straight_killable_run  # COMMAND straight to its end (conftest.py)
  workdir = str(tmp_path / 'killed')
  # 1. Inside the steps, before any checkpoint exists.
  process = _start(workdir)
  _kill_when(process, lambda: workdirs.train_lines(workdir) >= 2)
  # 2. Inside a checkpoint write: as soon as a step folder (temporary or not) appears.
  process = _start(workdir)
  checkpoints = os.path.join(workdir, 'checkpoints')
  _kill_when(process, lambda: os.path.isdir(checkpoints) and any(
      name != '.' for name in os.listdir(checkpoints)))
  # 3. To the end.
  process = _start(workdir)
  _, err = process.communicate(timeout=300)
  assert process.returncode == 0, err[-2000:]

  a, b = checkpoint.read_checkpoint(straight), checkpoint.read_checkpoint(workdir)
  assert int(a['step']) == int(b['step']) == 16
  jax.tree.map(np.testing.assert_array_equal, a['params'], b['params'])
  jax.tree.map(np.testing.assert_array_equal, a['opt_state'], b['opt_state'])
  with open(os.path.join(straight, 'summary.json')) as f, \
       open(os.path.join(workdir, 'summary.json')) as g:
    expected, actual = json.load(f), json.load(g)
  timed = ('wall_seconds', 'train/images_per_sec', 'train/flops_per_sec', 'train/mfu')
  assert sorted(expected) == sorted(actual)
  assert {k: v for k, v in actual.items() if k not in timed} == {
      k: v for k, v in expected.items() if k not in timed}
  assert all(actual[k] > 0 for k in timed if k in actual)
  assert not [n for n in os.listdir(checkpoints) if 'tmp' in n]  # no half-written folder left


def _no_collective(*args, **kwargs):
  raise AssertionError('a collective in a single-process run')


def test_one_process_stops_after_the_step_in_flight_at_sigterm_without_a_collective(
    tmp_path, monkeypatch):
  to_global, batches = parallel.to_global, []

  def sigterm_at_step_3(batch, mesh):  # the trainer puts each step's batch on the mesh first
    batches.append(batch)
    if len(batches) == 1:  # the loop has begun (claiming the workdir syncs the processes once)
      monkeypatch.setattr(multihost_utils, 'process_allgather', _no_collective)
    if len(batches) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return to_global(batch, mesh)

  monkeypatch.setattr(parallel, 'to_global', sigterm_at_step_3)
  handler = signal.getsignal(signal.SIGTERM)
  workdir = str(tmp_path / 'w')
  # 8 steps; no checkpoint before the end but the stop's.
  config = trainer_test._config(checkpoint_every_epochs=100)
  assert trainer.train_and_evaluate(config, workdir) == {}
  assert len(batches) == 3
  assert signal.getsignal(signal.SIGTERM) is handler  # put back
  assert [s for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit()] == ['3']
  assert int(checkpoint.read_checkpoint(workdir)['step']) == 3
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))


def test_one_process_reads_its_own_sigterm_handler(monkeypatch):
  monkeypatch.setattr(multihost_utils, 'process_allgather', _no_collective)
  monkeypatch.setattr(multihost_utils, 'reached_preemption_sync_point', _no_collective)
  previous = lambda *_: None  # pylint: disable=unnecessary-lambda-assignment
  handler = signal.signal(signal.SIGTERM, previous)
  try:
    with preemption.watch(4) as requested:
      assert not requested(5)
      os.kill(os.getpid(), signal.SIGTERM)
      assert requested(6)
    assert signal.getsignal(signal.SIGTERM) is previous
  finally:
    signal.signal(signal.SIGTERM, handler)


def test_several_processes_leave_sigterm_to_the_jax_notifier(monkeypatch, caplog):
  """With several processes no Python handler replaces the preemption notifier's, and the
  decision is the sync point's, asked first with the start step, then with each step."""
  asked = []
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(multihost_utils, 'process_allgather', _no_collective)
  monkeypatch.setattr(multihost_utils, 'reached_preemption_sync_point',
                      lambda step: asked.append(step) or step == 7)
  handler = signal.getsignal(signal.SIGTERM)
  with preemption.watch(5) as requested:
    assert signal.getsignal(signal.SIGTERM) is handler
    assert [requested(step) for step in (6, 7)] == [False, True]
  assert asked == [5, 6, 7]

  def service_off(step):
    raise RuntimeError('Preemption sync manager has not been initialized.')

  monkeypatch.setattr(multihost_utils, 'reached_preemption_sync_point', service_off)
  with caplog.at_level(logging.WARNING), preemption.watch(0) as requested:
    assert not requested(1)
  assert 'jax_enable_preemption_service is off' in caplog.text


def _checkpoint_steps(workdir):
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit())


def test_a_first_ctrl_c_to_train_py_saves_the_step_in_flight_and_exits_0(tmp_path):
  workdir = str(tmp_path / 'w')
  process = _start(workdir)
  deadline = time.time() + 180
  while workdirs.train_lines(workdir) < 2:
    assert process.poll() is None, process.stderr.read()[-2000:]
    assert time.time() < deadline, 'training never began'
    time.sleep(0.005)
  process.send_signal(signal.SIGINT)
  _, err = process.communicate(timeout=180)
  assert process.returncode == 0, err[-2000:]
  assert preemption.INTERRUPTED in err and 'Traceback' not in err
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    logged = [json.loads(line)['step'] for line in f if 'train/loss' in line]
  stopped = int(checkpoint.read_checkpoint(workdir)['step'])
  # The step in flight is saved: the last step logged (every step is), not the last multiple
  # of 4 (the periodic checkpoints), and the run stopped well before its 16 steps.
  assert 2 <= stopped == logged[-1] < 16
  assert _checkpoint_steps(workdir)[-1] == stopped
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))


def test_ctrl_c_asks_for_a_stop_and_a_second_one_is_the_default_action(monkeypatch):
  monkeypatch.setattr(multihost_utils, 'reached_preemption_sync_point', _no_collective)
  previous = lambda *_: None  # pylint: disable=unnecessary-lambda-assignment
  handler = signal.signal(signal.SIGINT, previous)
  try:
    with preemption.watch(0) as requested:
      assert not requested(1)
      os.kill(os.getpid(), signal.SIGINT)
      assert requested(2)
      # The next Ctrl-C kills the process: the kernel's default action, no Python handler.
      assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL  # also while the last save ends
    signal.signal(signal.SIGINT, previous)
    with preemption.watch(0) as requested:  # no Ctrl-C: the caller's handler comes back
      assert not requested(1)
    assert signal.getsignal(signal.SIGINT) is previous
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job ignores Ctrl-C: keep it so
    with preemption.watch(0) as requested:
      assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
  finally:
    signal.signal(signal.SIGINT, handler)


def test_a_second_ctrl_c_ends_the_process_at_once_without_a_traceback():
  script = ('import os, signal, time\n'
            'from sdd_jax.train import preemption\n'
            'with preemption.watch(0) as requested:\n'
            '  os.kill(os.getpid(), signal.SIGINT)\n'
            '  assert requested(1)\n'
            '  print("saving", flush=True)\n'
            '  os.kill(os.getpid(), signal.SIGINT)\n'
            '  time.sleep(30)\n'
            'print("not reached", flush=True)\n')
  started = time.time()
  done = subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=ENV, capture_output=True,
                        text=True, timeout=60, preexec_fn=_as_a_foreground_job)
  assert done.returncode == -signal.SIGINT, done.stderr[-2000:]  # 128 + 2 = 130 in a shell
  assert done.stdout == 'saving\n' and 'Traceback' not in done.stderr
  assert time.time() - started < 25  # at once, not after the sleep
