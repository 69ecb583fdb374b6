"""2 processes x 4 CPU devices (jax.distributed on localhost) train like 1 process x 8 devices."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from sdd_jax import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def test_two_processes_equal_one_process_and_only_process_zero_logs(tmp_path):
  single = str(tmp_path / 'single')
  multi = str(tmp_path / 'multi')
  one = subprocess.run(_command(single), cwd=ROOT, env=_env(8), capture_output=True, text=True,
                       timeout=400)
  assert one.returncode == 0, one.stderr[-3000:]

  port = _free_port()
  processes = [subprocess.Popen(
      _command(multi, f'--coordinator_address=localhost:{port}', '--num_processes=2',
               f'--process_id={i}'), cwd=ROOT, env=_env(4), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=400) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
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
