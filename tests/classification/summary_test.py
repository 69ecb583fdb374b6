"""Exact summaries: a run stopped or killed anywhere and resumed, or re-run after finishing,
writes the uninterrupted run's `summary.json` (every figure but the measured times), as strict
JSON; a finished workdir re-run changes no byte; a flipped bit in a checkpoint falls back."""
import json
import math
import os
import shutil

import pytest

from sdd_jax.workdir import checkpoint
from sdd_jax.classification import trainer
from tests import workdirs

# Measured, not computed: a resumed run cannot time the same seconds (checked finite and > 0).
TIMED = ('wall_seconds', 'train/images_per_sec', 'train/flops_per_sec', 'train/mfu')


def _config():
  """Smoke SD-Dropout: 64 synthetic 16x16 examples, batch 16: 4 steps an epoch, 2 epochs
  (checkpoints at 4 and 8), a log point every 3 steps (3, 4 at the epoch's end, 6, 8)."""
  config = workdirs.tiny_config(sd_dropout=True)
  config.optim.lr_boundaries = (1,)
  config.log_every_steps = 3
  return config


_snapshot = workdirs.snapshot


_strict_json = workdirs.strict_json


def _train_records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    records = [json.loads(line) for line in f]
  return [(r['step'], r['train/loss'], r['train/top1']) for r in records if 'train/loss' in r]


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('straight') / 'run')
  trainer.train_and_evaluate(_config(), workdir)
  return workdir, _strict_json(os.path.join(workdir, 'summary.json'))


def _assert_same_summary(expected, workdir):
  actual = _strict_json(os.path.join(workdir, 'summary.json'))
  assert sorted(actual) == sorted(expected)
  differ = {k: (expected[k], actual[k]) for k in expected
            if k not in TIMED and expected[k] != actual[k]}
  assert not differ, differ
  for key in TIMED:
    if key in expected:
      assert math.isfinite(actual[key]) and actual[key] > 0, (key, actual[key])


def test_the_straight_summary_is_strict_json_of_the_last_logged_window(straight):
  workdir, summary = straight
  records = _train_records(workdir)
  assert [r[0] for r in records] == [3, 4, 6, 8]
  assert summary['train/loss'] == records[-1][1]  # the window of steps 7 and 8
  assert summary['steps'] == 8 and summary['train/flops_per_step'] > 0
  for key in TIMED:
    if key in summary:
      assert math.isfinite(summary[key]) and summary[key] > 0


# Stop points (steps 1..8; log points 3, 4, 6, 8; checkpoints at 4 and 8):
STOPS = {
    # step 2: mid-epoch, before any checkpoint, the first window [1..3] not yet logged; then
    # step 5: just after a checkpoint, the window [5, 6] half done
    'mid_epoch_then_after_a_checkpoint': (2, 5),
    # step 7: within the last log window [7, 8], the last step before the final checkpoint
    'within_the_last_log_window': (7,),
}


@pytest.mark.parametrize('stops', STOPS.values(), ids=STOPS.keys())
def test_stopped_and_resumed_runs_write_the_straight_summary(straight, tmp_path, stops):
  expected_workdir, expected = straight
  workdir = str(tmp_path / 'run')
  for stop in stops:
    assert trainer.train_and_evaluate(_config(), workdir, stop_after_step=stop) == {}
    assert not os.path.exists(os.path.join(workdir, 'summary.json'))
  trainer.train_and_evaluate(_config(), workdir)
  _assert_same_summary(expected, workdir)
  # The log points and their windows' means are the straight run's too.
  assert _train_records(workdir) == _train_records(expected_workdir)


def test_a_finished_workdir_re_run_changes_no_byte(straight):
  workdir, expected = straight
  before = _snapshot(workdir)
  assert trainer.train_and_evaluate(_config(), workdir) == expected
  assert _snapshot(workdir) == before


def test_a_kill_between_the_final_checkpoint_and_the_summary(straight, tmp_path):
  """Simulated by deleting summary.json (and a damaged one is the same case): the rerun
  evaluates the final checkpoint again and writes the straight summary."""
  source, expected = straight
  for damage in (None, b'{"steps": 8, "train/loss": Na'):
    workdir = str(tmp_path / f'run{damage is None}')
    shutil.copytree(source, workdir)
    path = os.path.join(workdir, 'summary.json')
    os.remove(path)
    if damage:
      with open(path, 'wb') as f:
        f.write(damage)
    trainer.train_and_evaluate(_config(), workdir)
    _assert_same_summary(expected, workdir)
    assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['4', '8']


def test_a_flipped_bit_in_any_array_file_is_unreadable_and_falls_back(straight, tmp_path):
  source, expected = straight
  step_dir = os.path.join(source, 'checkpoints', '8')
  data_files = sorted(os.path.relpath(os.path.join(folder, name), step_dir)
                      for folder, _, names in os.walk(step_dir) for name in names
                      if os.sep + 'd' + os.sep in os.path.join(folder, name))
  assert len(data_files) > 3
  for i, relative in enumerate(data_files):
    workdir = str(tmp_path / f'flip{i}')
    shutil.copytree(source, workdir, ignore=shutil.ignore_patterns('tensorboard', 'evals'))
    path = os.path.join(workdir, 'checkpoints', '8', relative)
    with open(path, 'rb') as f:
      data = bytearray(f.read())
    data[len(data) * 3 // 4] ^= 0x10
    with open(path, 'wb') as f:
      f.write(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match=rf'checkpoint 8 .* is unreadable: '
                       rf'{relative} differs from the sha256 recorded at save time'):
      checkpoint.read_checkpoint(workdir)
  # The trainer falls back to step 4, sets step 8 aside and redoes steps 5..8 exactly.
  os.remove(os.path.join(workdir, 'summary.json'))
  trainer.train_and_evaluate(_config(), workdir)
  assert os.path.isdir(os.path.join(workdir, 'unreadable_checkpoints', '8'))
  _assert_same_summary(expected, workdir)


def test_a_kill_after_a_log_point_leaves_no_duplicate_or_broken_log_line(straight, tmp_path):
  """Simulated: stopped at step 5 (checkpoint), then the lines a killed run would have
  written past it (step 6's record, and step 8's cut short) are appended by hand."""
  expected_workdir, expected = straight
  workdir = str(tmp_path / 'run')
  trainer.train_and_evaluate(_config(), workdir, stop_after_step=5)
  with open(os.path.join(expected_workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    step_6 = next(line for line in f if line.startswith('{"step": 6,'))
  with open(os.path.join(workdir, 'metrics.jsonl'), 'a', encoding='utf-8') as f:
    f.write(step_6 + '{"step": 8, "train/lo')
  trainer.train_and_evaluate(_config(), workdir)
  _assert_same_summary(expected, workdir)
  assert _train_records(workdir) == _train_records(expected_workdir)
