"""End-to-end runs of the trainer on a tiny model and synthetic data."""
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import common
from sdd_jax.workdir import checkpoint
from sdd_jax.config import validation as config_validation
from sdd_jax import data
from sdd_jax.classification import trainer
from tests import workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(**overrides):
  """Smoke SD-Dropout: 64 synthetic examples, batch 16 (4 steps/epoch), 2 epochs, BatchNorm
  groups of 4 examples (so the bitwise resume covers ghost BN too; whole-batch BN resumes in
  ps_kd_test and the object-store tests)."""
  config = common.recipe()
  config.methods.sd_dropout = dict(common.SD_DROPOUT)
  common.smoke(config)
  config.model.bn_group = 4
  config.data.synthetic_shape = (16, 16, 3)
  config.data.image_size = 16
  config.data.crop_padding = 2
  config.probe.every_steps = 2  # the KL-direction probe rides along (it never changes training)
  return workdirs.with_overrides(config, overrides)


def _final_state(workdir, config):
  """The newest checkpoint of `workdir`, restored with the trainer's own structure."""
  model = trainer.create_model(config)
  from sdd_jax.train import optim  # pylint: disable=import-outside-toplevel
  from sdd_jax.train import state as state_lib
  tx = optim.make_optimizer(config.optim, optim.make_lr_schedule(config.optim, 4))
  target = state_lib.create_train_state(model, tx, state_lib.init_key(0),
                                        np.zeros((1, 16, 16, 3), np.float32))
  restored, step = checkpoint.Checkpointer(workdir, 3).restore(target)
  return restored, step


@pytest.fixture(scope='module')
def straight_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('straight'))
  summary = trainer.train_and_evaluate(_config(), workdir)
  return workdir, summary


def test_a_run_writes_summary_logs_tensorboard_and_checkpoints(straight_run):
  workdir, summary = straight_run
  for key in ('test/top1', 'test/top5', 'test/nll', 'test/ece', 'train/loss', 'steps',
              'wall_seconds', 'train/images_per_sec', 'train/flops_per_step',
              'train/flops_per_sec'):
    assert key in summary, key
  assert summary['steps'] == 8 and summary['test/count'] == 64
  with open(os.path.join(workdir, 'summary.json')) as f:
    assert json.load(f)['steps'] == 8
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  train_records = [r for r in records if 'train/loss' in r]
  assert [r['step'] for r in train_records] == [2, 4, 6, 8]
  for r in train_records:  # the total is CE + 1 * 3**2 * term, as logged
    np.testing.assert_allclose(r['train/loss'],
                               r['train/loss_ce'] + 9 * r['train/loss_sd_dropout'], rtol=1e-4)
  np.testing.assert_allclose([r['train/lr'] for r in train_records], [0.1, 0.1, 0.01, 0.01],
                             rtol=1e-6)  # lr_boundaries=(1,) epoch = 4 steps; logged mean of 2
  assert any('test/top1' in r for r in records)
  probes = [r for r in records if 'probe/grad_cosine' in r]
  assert [r['step'] for r in probes] == [2, 4, 6, 8]
  for r in probes:
    assert -1 <= r['probe/grad_cosine'] <= 1 and 0 <= r['probe/assumption1_fraction'] <= 1
    assert r['probe/grad_l1_forward'] > 0 and r['probe/grad_l1_reverse'] > 0
  events = os.listdir(os.path.join(workdir, 'tensorboard'))
  assert events and events[0].startswith('events.out.tfevents')
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['4', '8']


def test_tensorboard_events_hold_the_scalars(straight_run):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
  workdir, _ = straight_run
  acc = event_accumulator.EventAccumulator(os.path.join(workdir, 'tensorboard'))
  acc.Reload()
  tags = acc.Tags()['scalars']
  for tag in ('train/loss', 'train/loss_ce', 'train/loss_sd_dropout', 'train/lr',
              'train/top1', 'train/images_per_sec', 'test/top1'):
    assert tag in tags, tag
  assert [e.step for e in acc.Scalars('train/loss')] == [2, 4, 6, 8]


def test_stop_and_resume_equals_the_straight_run_bitwise(straight_run, tmp_path):
  workdir, summary = straight_run
  resumed = str(tmp_path / 'resumed')
  assert trainer.train_and_evaluate(_config(), resumed, stop_after_step=3) == {}
  assert sorted(os.listdir(os.path.join(resumed, 'checkpoints'))) == ['3']
  resumed_summary = trainer.train_and_evaluate(_config(), resumed)
  a, step_a = _final_state(workdir, _config())
  b, step_b = _final_state(resumed, _config())
  assert step_a == step_b == 8
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.batch_stats, b.batch_stats)
  jax.tree.map(np.testing.assert_array_equal, a.opt_state, b.opt_state)
  assert resumed_summary['test/top1'] == summary['test/top1']
  assert resumed_summary['test/nll'] == summary['test/nll']


def test_a_workdir_of_another_config_refuses_and_is_left_alone(straight_run):
  workdir, _ = straight_run
  before = {name: os.path.getmtime(os.path.join(workdir, name)) for name in os.listdir(workdir)}
  with pytest.raises(trainer.WorkdirError,
                     match=r'holds a run of a different config \(optim.lr: 0.1 -> 0.05\); use '
                           r'a new --workdir'):
    trainer.train_and_evaluate(_config(**{'optim.lr': 0.05}), workdir)
  after = {name: os.path.getmtime(os.path.join(workdir, name)) for name in os.listdir(workdir)}
  assert before == after


def test_a_bad_value_is_refused_before_the_workdir_exists(tmp_path):
  workdir = str(tmp_path / 'never')
  with pytest.raises(config_validation.ConfigError, match=r'config.optim.lr: must be > 0'):
    trainer.train_and_evaluate(_config(**{'optim.lr': -1.0}), workdir)
  with pytest.raises(data.DataError):
    trainer.train_and_evaluate(_config(**{'data.source': 'npz', 'data.path': str(tmp_path)}),
                               workdir)
  assert not os.path.exists(workdir)


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / 'nan')
  config = _config(**{'optim.lr': 1e30, 'log_every_steps': 1})
  with pytest.raises(trainer.NonFiniteLossError, match=r'the training loss is (nan|inf) at step '
                                                        r'\d+; the last good checkpoint is kept'):
    trainer.train_and_evaluate(config, workdir)
  steps = os.listdir(os.path.join(workdir, 'checkpoints'))
  assert all(int(s) < 4 for s in steps if s.isdigit())  # nothing saved after the blow-up


def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous(straight_run, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / 'copy')
  shutil.copytree(straight_run[0], workdir)
  for root, _, files in os.walk(os.path.join(workdir, 'checkpoints', '8')):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'garbage')
  os.remove(os.path.join(workdir, 'summary.json'))
  summary = trainer.train_and_evaluate(_config(), workdir)  # resumes from step 4, redoes 5..8
  assert os.path.isdir(os.path.join(workdir, 'unreadable_checkpoints', '8'))
  assert summary['test/top1'] == straight_run[1]['test/top1']


def test_sigterm_saves_a_checkpoint_and_exits_zero(tmp_path):
  """A real process, a real SIGTERM after its first logged step."""
  workdir = str(tmp_path / 'term')
  command = [sys.executable, os.path.join(ROOT, 'train.py'),
             '--config', os.path.join(ROOT, 'configs', 'cifar100_resnet18_sdd.py') + ':smoke',
             '--workdir', workdir, '--config.num_epochs=50', '--config.log_every_steps=1',
             '--config.checkpoint_every_epochs=1000']
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
  metrics = os.path.join(workdir, 'metrics.jsonl')
  deadline = __import__('time').time() + 120
  while not (os.path.exists(metrics) and os.path.getsize(metrics)) and process.poll() is None:
    assert __import__('time').time() < deadline, 'no step logged in 120 s'
    __import__('time').sleep(0.2)
  process.send_signal(signal.SIGTERM)
  output = process.communicate(timeout=120)[0].decode()
  assert process.returncode == 0, output
  steps = [int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit()]
  assert len(steps) == 1 and 1 <= steps[0] < 200, (steps, output)
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))
