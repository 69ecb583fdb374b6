"""SIGKILL on a gs:// workdir (the GCS emulator of tests/object_store.py), as a preempted VM
would be killed: inside the steps, then inside a checkpoint write; the restarted run ends with
parameters, optimizer state and summary bitwise equal to the same run straight on a local
workdir. Then `evaluate.py` and `python -m sdd_jax.report` run on the same URI and write their
results into the bucket, and a second run is refused by the lease while the first holds it."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
from etils import epath

from sdd_jax.workdir import checkpoint
from sdd_jax.workdir import lease
from sdd_jax import report
from tests.train import preemption_test

ROOT = preemption_test.ROOT


def _env():
  # Built at call time: the gcs_root fixture has put the emulator's variables in os.environ.
  return dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')


def _start(workdir):
  return subprocess.Popen(preemption_test.COMMAND + ['--workdir', workdir], cwd=ROOT, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _train_lines(workdir):
  path = epath.Path(workdir) / 'metrics.jsonl'
  try:
    text = path.read_text()
  except (OSError, ValueError):  # not written yet
    return 0
  return sum('train/loss' in line for line in text.splitlines())


def _has_step_folder(workdir):
  try:
    return any(True for _ in (epath.Path(workdir) / 'checkpoints').iterdir())
  except (OSError, ValueError):
    return False


def _summary_without_times(text):
  summary = json.loads(text)
  timed = ('wall_seconds', 'train/images_per_sec', 'train/flops_per_sec', 'train/mfu')
  return {k: v for k, v in summary.items() if k not in timed}


def test_sigkill_on_gs_then_resume_equals_the_local_run_then_evaluate_and_report(
    gcs_root, tmp_path, straight_killable_run):
  straight = straight_killable_run  # the same command straight on a local workdir (conftest.py)
  remote = f'{gcs_root}/killed'
  process = _start(remote)  # 1. inside the steps, before any checkpoint exists
  preemption_test._kill_when(process, lambda: _train_lines(remote) >= 2)
  process = _start(remote)  # 2. inside a checkpoint write: a step folder has appeared
  preemption_test._kill_when(process, lambda: _has_step_folder(remote))
  lease_record = json.loads((epath.Path(remote) / 'lease.json').read_text())
  assert lease_record['pid'] == process.pid  # the killed run's lease is left behind...
  process = _start(remote)  # 3. ...and taken over at once (its process is gone): to the end
  _, err = process.communicate(timeout=300)
  assert process.returncode == 0, err[-2000:]

  a, b = checkpoint.read_checkpoint(straight), checkpoint.read_checkpoint(remote)
  assert int(a['step']) == int(b['step']) == 16
  jax.tree.map(np.testing.assert_array_equal, a['params'], b['params'])
  jax.tree.map(np.testing.assert_array_equal, a['opt_state'], b['opt_state'])
  with open(os.path.join(straight, 'summary.json'), encoding='utf-8') as f:
    expected = _summary_without_times(f.read())
  assert _summary_without_times((epath.Path(remote) / 'summary.json').read_text()) == expected
  assert not [p.name for p in (epath.Path(remote) / 'checkpoints').iterdir() if 'tmp' in p.name]
  assert not (epath.Path(remote) / 'lease.json').exists()

  # evaluate.py on the URI: its results and the reliability diagram land in the bucket.
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'evaluate.py'), '--workdir', remote,
                           '--evals=accuracy,calibration'], cwd=str(tmp_path), env=_env(),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert not os.path.exists(tmp_path / 'gs:')  # nothing went to a local folder named after it
  evals = epath.Path(remote) / 'evals'
  accuracy = json.loads((evals / 'accuracy' / 'results.json').read_text())
  calibration = json.loads((evals / 'calibration' / 'results.json').read_text())
  assert calibration['metrics']['calibration/top1'] == accuracy['metrics']['test/top1']
  assert (evals / 'calibration' / 'reliability.png').read_bytes()[:4] == b'\x89PNG'
  assert 'calibration' in (evals / 'report.md').read_text()

  # The report CLI on the URI, written into the bucket: the run's top-1 and its diagram's link.
  out = f'{gcs_root}/tables/report.md'
  assert report.main([remote, '--out', out]) == 0
  text = epath.Path(out).read_text()
  assert f'{remote}/evals/calibration/reliability.png' in text
  assert f'{accuracy["metrics"]["test/top1"]:.2f}' in text

  # The lease: while one run holds the workdir, a second one is refused in one line.
  holder = lease.Lease(remote)
  holder.acquire()
  try:
    result = subprocess.run(preemption_test.COMMAND + ['--workdir', remote], cwd=ROOT,
                            env=_env(), capture_output=True, text=True, timeout=300)
  finally:
    holder.release()
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(f'error: --workdir {remote} is in use')
  assert holder.holder in result.stderr
