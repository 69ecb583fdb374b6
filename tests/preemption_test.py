"""Kill anywhere: SIGKILL inside the steps and inside an asynchronous checkpoint write, restart,
and the final parameters equal an uninterrupted run's, bit for bit, and so does its summary
(every figure but the measured times)."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from sdd_jax import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = [sys.executable, os.path.join(ROOT, 'train.py'), '--config',
           os.path.join(ROOT, 'configs', 'cifar100_resnet18_sdd.py') + ':smoke',
           '--config.num_epochs=4', '--config.optim.lr_boundaries=(2,)',
           '--config.log_every_steps=1']  # 16 steps, a checkpoint every 4
ENV = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')


def _start(workdir):
  return subprocess.Popen(COMMAND + ['--workdir', workdir], cwd=ROOT, env=ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _train_lines(workdir):
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum('train/loss' in line for line in f)


def _kill_when(process, condition, timeout=180):
  deadline = time.time() + timeout
  while not condition():
    assert process.poll() is None, process.stderr.read()[-2000:]
    assert time.time() < deadline, 'the condition never came'
    time.sleep(0.005)
  process.send_signal(signal.SIGKILL)
  process.wait()


def test_sigkill_in_a_step_and_in_a_checkpoint_write_then_exact_resume(tmp_path):
  straight = str(tmp_path / 'straight')
  assert subprocess.run(COMMAND + ['--workdir', straight], cwd=ROOT, env=ENV,
                        capture_output=True, timeout=300).returncode == 0

  workdir = str(tmp_path / 'killed')
  # 1. Inside the steps, before any checkpoint exists.
  process = _start(workdir)
  _kill_when(process, lambda: _train_lines(workdir) >= 2)
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
