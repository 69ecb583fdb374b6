"""2 processes x 4 CPU devices (jax.distributed on localhost) train like 1 process x 8 devices,
and stop together when one of them gets SIGTERM."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from sdd_jax.workdir import checkpoint
from tests import workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, 'configs', 'cifar100_resnet18_sdd.py') + ':smoke'
# 2 epochs x 4 steps = 8 steps; checkpoints at 4 and 8; a log line every step.
OVERRIDES = ['--config.log_every_steps=1']


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _command(workdir, *extra):
  return [sys.executable, os.path.join(ROOT, 'train.py'), '--config', CONFIG, '--workdir', workdir,
          *OVERRIDES, *extra]


def _env(devices):
  return dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
              JAX_PLATFORMS='cpu')


def _params(workdir, step):
  return checkpoint.read_checkpoint(workdir, step)['params']


def start_two_processes(workdir, *extra, log=None):
  """Starts `train.py` as processes 0 and 1 of a 2 x 4-device run; their output goes to files
  `<log>.<i>.out/err` (`log` defaults to `workdir`; no pipe to fill)."""
  port = _free_port()
  processes = []
  for i in range(2):
    with open(f'{log or workdir}.{i}.out', 'w') as out, \
         open(f'{log or workdir}.{i}.err', 'w') as err:
      processes.append(subprocess.Popen(
          _command(workdir, f'--coordinator_address=localhost:{port}', '--num_processes=2',
                   f'--process_id={i}', *extra), cwd=ROOT, env=_env(4), stdout=out, stderr=err,
          text=True))
  return processes


def finish(processes, log, timeout=300):
  """[(stdout, stderr)] of each process once all have exited; if any is still running after
  `timeout` seconds (a hang: e.g. one waits in a collective the other never joins), all are
  killed and the test fails."""
  deadline = time.time() + timeout
  try:
    for p in processes:
      p.wait(timeout=max(deadline - time.time(), 0.1))
  except subprocess.TimeoutExpired:
    for p in processes:
      p.kill()
      p.wait()
    pytest.fail(f'still running after {timeout} s: {_read(log, 1)[1][-2000:]}')
  return [_read(log, i) for i in range(len(processes))]


def _read(log, i):
  with open(f'{log}.{i}.out') as out, open(f'{log}.{i}.err') as err:
    return out.read(), err.read()


@pytest.fixture(scope='module')
def two_process_run(tmp_path_factory):
  """One straight 2-process run, shared: its workdir and each process's (stdout, stderr)."""
  multi = str(tmp_path_factory.mktemp('two_process') / 'multi')
  processes = start_two_processes(multi)
  outputs = finish(processes, multi, timeout=400)
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  return multi, outputs


def test_two_processes_equal_one_process_and_only_process_zero_logs(tmp_path, two_process_run):
  single = str(tmp_path / 'single')
  multi, outputs = two_process_run
  one = subprocess.run(_command(single), cwd=ROOT, env=_env(8), capture_output=True, text=True,
                       timeout=400)
  assert one.returncode == 0, one.stderr[-3000:]
  # Process 0 alone prints the result and writes logs; both wrote the checkpoints together.
  assert 'final:' in outputs[0][0] and 'final:' not in outputs[1][0]
  final = [l for l in outputs[0][0].splitlines() if l.startswith('final:')][0]
  assert all(key in final for key in ('test/top1', 'test/nll', 'test/ece'))
  assert sorted(os.listdir(os.path.join(multi, 'checkpoints'))) == ['4', '8']
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
               _params(single, 8), _params(multi, 8))
  with open(os.path.join(single, 'summary.json')) as f, \
       open(os.path.join(multi, 'summary.json')) as g:
    s1, s2 = json.load(f), json.load(g)
  assert s1['test/count'] == s2['test/count'] == 64  # every eval example once, across processes
  np.testing.assert_allclose(s1['test/top1'], s2['test/top1'])
  single_log = [json.loads(l) for l in open(os.path.join(single, 'metrics.jsonl'))]
  multi_log = [json.loads(l) for l in open(os.path.join(multi, 'metrics.jsonl'))]
  np.testing.assert_allclose([r['train/loss'] for r in single_log if 'train/loss' in r],
                             [r['train/loss'] for r in multi_log if 'train/loss' in r], rtol=1e-5)


def test_sigterm_to_one_process_stops_both_at_one_step_and_the_resumed_run_is_exact(
    tmp_path, two_process_run):
  """SIGTERM to process 1 alone once step 1 is logged: JAX's preemption sync point (no
  collective per step) makes both processes save the same step and exit 0; resumed, the run
  ends with the straight run's parameters and optimizer state, bit for bit, and its summary
  (but the measured times)."""
  straight, _ = two_process_run
  workdir = str(tmp_path / 'stopped')
  processes = start_two_processes(workdir)
  deadline = time.time() + 300
  while workdirs.train_lines(workdir) < 1:
    assert all(p.poll() is None for p in processes), _read(workdir, 1)[1][-2000:]
    assert time.time() < deadline, 'no step logged in 300 s'
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGTERM)
  outputs = finish(processes, workdir, timeout=150)
  saved = []
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
    saved.append([int(s) for s in re.findall(r'saved the checkpoint at step (\d+) and stopped',
                                             err)])
  assert len(saved[0]) == 1 and saved[0] == saved[1], saved  # both stopped, at the same step
  stop = saved[0][0]
  assert 1 <= stop < 8
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit())
  assert steps[-1] == stop and 8 not in steps
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))

  resumed = str(tmp_path / 'resumed')
  processes = start_two_processes(workdir, log=resumed)
  for p, (_, err) in zip(processes, finish(processes, resumed, timeout=300)):
    assert p.returncode == 0, err[-3000:]
  a, b = checkpoint.read_checkpoint(straight, 8), checkpoint.read_checkpoint(workdir, 8)
  for key in ('params', 'opt_state'):
    jax.tree.map(np.testing.assert_array_equal, a[key], b[key])
  with open(os.path.join(straight, 'summary.json')) as f, \
       open(os.path.join(workdir, 'summary.json')) as g:
    expected, actual = json.load(f), json.load(g)
  timed = ('wall_seconds', 'train/images_per_sec', 'train/flops_per_sec', 'train/mfu')
  assert {k: v for k, v in actual.items() if k not in timed} == {
      k: v for k, v in expected.items() if k not in timed}
