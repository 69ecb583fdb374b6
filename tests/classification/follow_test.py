"""evaluate.py --follow beside a real train.py (sdd_jax/classification/follow.py): every kept
checkpoint evaluated once, as `evaluate.py --step N` evaluates it; a follower killed with
SIGKILL and started again evaluates no step twice; the training's lock is never taken; the
sections training leaves out (`in_training=False`) land in the workdir's evals/ at the end.

One training subprocess (smoke CE, as tests/classification/evaluation_test.py trains it, so
the compilation cache serves both: 2 epochs, checkpoints at steps 4 and 8) serves every test."""
import fcntl
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_file_loader

from sdd_jax import evaluation
from sdd_jax.classification import follow as follow_lib
from sdd_jax.workdir import followed
from sdd_jax.workdir import paths as workdir_path
from tests import workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ONE_DEVICE = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=1',
              'JAX_PLATFORMS': 'cpu'}
NAMES = ['accuracy', 'calibration']
STEPS = [4, 8]  # the smoke run's checkpoints (one per epoch), both kept


def _python(script, *args):
  return [sys.executable, os.path.join(ROOT, script), *args]


def _wait_for(condition, process, timeout=240):
  deadline = time.time() + timeout
  while not condition():
    assert process.poll() is None, process.communicate()[1][-3000:]
    assert time.time() < deadline, 'the condition never came'
    time.sleep(0.02)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A training run and a follower started beside it, killed (SIGKILL) after its first step."""
  workdir = str(tmp_path_factory.mktemp('follow') / 'run')
  train = subprocess.Popen(_python(
      'train.py', '--config=configs/cifar100_resnet18_ce.py:smoke', f'--workdir={workdir}',
      "--config.evals.calibration={'every_epochs': 1, 'in_training': False}"),
      cwd=ROOT, env=ONE_DEVICE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  _wait_for(lambda: os.path.exists(os.path.join(workdir, 'config.json')), train)
  follower = subprocess.Popen(_python(
      'evaluate.py', f'--workdir={workdir}', '--follow', '--follow_interval=0.05',
      f'--evals={",".join(NAMES)}'), cwd=ROOT, env=ONE_DEVICE, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  first = follower.stdout.readline()
  follower.send_signal(signal.SIGKILL)  # mid-way: at once after its first step
  rest, stderr = follower.communicate()
  assert first.startswith('evaluated step'), stderr[-3000:]
  _, stderr = train.communicate(timeout=300)
  assert train.returncode == 0, stderr[-3000:]  # never blocked by the follower
  return workdir, [first] + rest.splitlines(), followed.read(workdir)


def _outside_follow(workdir):
  return {k: v for k, v in workdirs.snapshot(workdir).items()
          if not k.startswith(('follow' + os.sep, 'evals' + os.sep))}


def test_a_killed_follower_restarts_without_the_lock_evaluates_each_step_once_as_evaluate_py(
    run, tmp_path):
  workdir, killed_lines, killed_record = run
  killed_steps = [int(line.split()[2].rstrip(':')) for line in killed_lines
                  if line.startswith('evaluated step')]
  assert killed_steps and len(set(killed_steps)) == len(killed_steps)
  assert set(killed_steps) <= set(killed_record)  # printed only once recorded
  before = _outside_follow(workdir)
  lines = []
  with open(os.path.join(workdir, '.lock'), 'a', encoding='utf-8') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running training holds it
    steps = evaluation.follow_workdir(workdir, None, NAMES, interval_s=0.05, idle_s=60,
                                      out=lines.append)
  assert not set(steps) & set(killed_record)  # no step twice
  assert sorted(set(steps) | set(killed_record)) == STEPS
  assert len(lines) == len(steps)
  record = followed.read(workdir)
  assert sorted(record) == STEPS and not any(e['note'] for e in record.values())
  assert _outside_follow(workdir) == before  # read-only: lock, checkpoints, config, logs
  # TensorBoard: each step's metrics once, at that step, over both followers' event files.
  seen = []
  for path in glob.glob(os.path.join(workdir, 'follow', 'tensorboard', 'events.*')):
    for event in event_file_loader.EventFileLoader(path).Load():
      seen += [event.step for v in event.summary.value if v.tag == 'test/top1']
  assert sorted(seen) == STEPS
  # A follower started again on the finished run evaluates nothing.
  assert evaluation.follow_workdir(workdir, None, NAMES, interval_s=0.05, idle_s=60,
                                   out=lines.append) == []
  # Training left calibration out (in_training=False): its metrics.jsonl has none, and the
  # follower filled evals/calibration in from the last step.
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    assert 'calibration/' not in f.read()
  filled = workdirs.strict_json(os.path.join(workdir, 'evals', 'calibration', 'results.json'))
  assert filled['metrics'] == {k: v for k, v in record[8]['metrics'].items()
                               if k.startswith('calibration/')}
  # Each step's results equal a plain evaluate.py --step on a copy without the follower's.
  plain = str(tmp_path / 'plain')
  shutil.copytree(workdir, plain, ignore=shutil.ignore_patterns('follow', 'evals'))
  for step in STEPS:
    outcome = evaluation.evaluate_workdir(plain, None, NAMES, step=step)
    assert outcome.step == step
    followed_metrics = record[step]['metrics']
    assert sorted(outcome.metrics) == sorted(followed_metrics)
    for key, value in outcome.metrics.items():  # 1 device there, 8 here: float32 sums
      np.testing.assert_allclose(followed_metrics[key], value, rtol=1e-5, atol=1e-5, err_msg=key)
    step_results = workdirs.strict_json(os.path.join(
        workdir, 'follow', str(step), 'evals', 'accuracy', 'results.json'))
    assert step_results['metrics']['test/top1'] == followed_metrics['test/top1']
  nll = [record[step]['metrics']['test/nll'] for step in STEPS]
  assert len(set(nll)) == len(STEPS)  # different checkpoints, not one
  with pytest.raises(evaluation.EvaluationError, match=r'--step 5: no finished checkpoint 5 .*'
                     r'holds steps \[4, 8\]'):
    evaluation.evaluate_workdir(plain, None, NAMES, step=5)


def _finished(workdir, tmp_path):
  """A copy of the run with every step followed."""
  copy = str(tmp_path / 'run')
  shutil.copytree(workdir, copy)
  if len(followed.read(copy)) < len(STEPS):
    evaluation.follow_workdir(copy, None, NAMES, interval_s=0.05, idle_s=60, out=len)
  return copy


def test_a_checkpoint_removed_between_listing_and_reading_is_skipped_with_a_note(
    run, tmp_path, monkeypatch):
  copy = _finished(run[0], tmp_path)
  listed = follow_lib.checkpoint_record.recorded_steps
  monkeypatch.setattr(follow_lib.checkpoint_record, 'recorded_steps',
                      lambda directory: listed(directory) + [12])  # max_to_keep took it
  lines = []
  assert evaluation.follow_workdir(copy, None, NAMES, interval_s=0.05, idle_s=60,
                                   out=lines.append) == []
  assert lines == ['skipped step 12: checkpoint 12 was removed (max_to_keep) before it was read']
  assert followed.read(copy)[12] == {'metrics': {}, 'skipped': {}, 'note': lines[0][17:]}


def test_bad_follow_inputs_are_one_line_and_write_nothing(run, tmp_path):
  workdir, _, _ = run
  with pytest.raises(evaluation.EvaluationError, match='config.json not found; --workdir must '
                     'be a folder written by train.py'):
    evaluation.follow_workdir(str(tmp_path), interval_s=1, idle_s=1)
  for interval in (0, 601):
    with pytest.raises(evaluation.EvaluationError, match=r'--follow_interval: must be in '
                       r'\(0, 600\] seconds'):
      evaluation.follow_workdir(workdir, interval_s=interval, idle_s=1)
  with pytest.raises(evaluation.EvaluationError, match='--follow_idle: must be > 0'):
    evaluation.follow_workdir(workdir, interval_s=1, idle_s=0)
  assert not os.listdir(tmp_path)
  with pytest.raises(evaluation.EvaluationError, match=r'^--follow: evaluates the checkpoints '
                     r'of a training as they come; leave out --step and --init_from$'):
    evaluation.follow_workdir(workdir, interval_s=1, idle_s=1, given=('--step', '--init_from'))
  broken = str(tmp_path / 'broken')
  shutil.copytree(workdir, broken)
  with open(os.path.join(broken, 'follow', 'record.json'), 'w', encoding='utf-8') as f:
    f.write('{"steps": ')  # cut short
  with pytest.raises(followed.RecordError, match=r'follow/record.json cannot be read '
                     r'\(JSONDecodeError\); move it away to evaluate every checkpoint again'):
    evaluation.follow_workdir(broken, None, NAMES, interval_s=0.05, idle_s=60)
  # A run that stopped writing: no summary, nothing new for idle_s seconds.
  copy = str(tmp_path / 'stalled')
  shutil.copytree(workdir, copy)
  os.remove(os.path.join(copy, 'summary.json'))
  followed.write(copy, {s: {'metrics': {}, 'skipped': {}, 'note': 'test'} for s in STEPS})
  with pytest.raises(evaluation.EvaluationError, match=r'--follow: no new checkpoint and no '
                     r'summary.json in .* for 0.2 s; is train.py running\?'):
    evaluation.follow_workdir(copy, None, NAMES, interval_s=0.05, idle_s=0.2)


def test_a_gs_workdir_is_followed_in_place(run, gcs_root, tmp_path):
  workdir = _finished(run[0], tmp_path)
  record = followed.read(workdir)
  remote = workdir_path.join(gcs_root, 'run')
  for folder, _, files in os.walk(workdir):
    relative = os.path.relpath(folder, workdir)
    if relative.startswith(('follow', 'evals', 'tensorboard', os.path.join('checkpoints', '4'))):
      continue
    for name in files:
      target = workdir_path.path(workdir_path.join(remote, *relative.split(os.sep), name))
      target.parent.mkdir(parents=True, exist_ok=True)
      with open(os.path.join(folder, name), 'rb') as f:
        workdir_path.write_bytes(target, f.read())
  lines = []
  assert evaluation.follow_workdir(remote, None, NAMES, interval_s=0.05, idle_s=60,
                                   out=lines.append) == [8]
  remote_record = followed.read(remote)
  assert sorted(remote_record) == [8]
  for key, value in remote_record[8]['metrics'].items():
    np.testing.assert_allclose(value, record[8]['metrics'][key], rtol=1e-5, err_msg=key)
  root = workdir_path.path(remote)
  assert (root / 'follow' / '8' / 'evals' / 'calibration' / 'results.json').exists()
  assert (root / 'evals' / 'calibration' / 'results.json').exists()  # filled in
  assert list((root / 'follow' / 'tensorboard').iterdir())
  assert not (root / 'lease.json').exists()  # no lease taken
