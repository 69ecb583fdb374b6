"""The workdir-file fault catalogue, generated from a finished run: every file the workdir holds,
in each of the states missing / truncated / garbage, given to train.py's entry
(`trainer.train_and_evaluate`) and evaluate.py's (`evaluation.evaluate_workdir`). Each either
proceeds correctly (what that is depends on the file: `_train_expectation`,
`_evaluate_expectation`) or raises one UserError line and leaves the workdir byte-identical.
Also: a workdir without config.json, paths too long for the file system, and the silence of
orbax's background reads."""
import json
import os
import shutil
import sys
import time

import pytest

from sdd_jax.workdir import records as checkpoint_record
from sdd_jax import errors
from sdd_jax import evaluation
from sdd_jax.classification import trainer
from sdd_jax.workdir import claim as workdir_lib
from tests import workdirs

STATES = ('missing', 'truncated', 'garbage')
_snapshot = workdirs.snapshot


def _config():
  """One smoke epoch (4 steps of 16 synthetic 16x16 images): one checkpoint, at step 4."""
  config = workdirs.tiny_config()
  config.num_epochs = 1
  return config


TIMED = ('wall_seconds', 'train/images_per_sec', 'train/flops_per_sec', 'train/mfu')


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('finished') / 'run')
  trainer.train_and_evaluate(_config(), workdir)
  with open(os.path.join(workdir, 'summary.json'), encoding='utf-8') as f:
    return workdir, json.load(f), _snapshot(workdir)


def _damage(path, state):
  if state == 'missing':
    os.remove(path)
    return
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2] if state == 'truncated' else
            (b'\x00\xffgarbage{' * (len(data) // 10 + 1))[:max(len(data), 10)])


def _kind(relative):
  """The class of a workdir file, which decides what a correct outcome is."""
  if relative.endswith(checkpoint_record.RECORD_FILE):
    return 'record'
  if relative.startswith('checkpoints' + os.sep):
    return 'checkpoint'
  if relative.startswith('evals' + os.sep):
    return 'evals'
  return {'config.json': 'config', 'summary.json': 'summary', '.lock': 'lock',
          'metrics.jsonl': 'log'}.get(relative, 'log' if relative.startswith('tensorboard') else
                                      relative)


def _one_line_user_error(call):
  try:
    return call(), None
  except errors.UserError as e:  # any other class is a bug and fails the test with its trace
    assert '\n' not in str(e), str(e)
    return None, e


def _refuse(token):
  raise AssertionError(f'summary.json holds {token}: not strict JSON')


def _same_summary(expected, actual):
  assert sorted(actual) == sorted(expected)
  assert {k: v for k, v in actual.items() if k not in TIMED} == {
      k: v for k, v in expected.items() if k not in TIMED}


def _check_train(kind, state, workdir, finished, before):
  """A damaged config.json or checkpoint file: one line, nothing changed (a missing config.json
  is rewritten when the checkpoints' records carry this config's digest); a damaged summary:
  rewritten as it was; anything else (logs, TensorBoard, evals/, the lock): left as it is."""
  _, expected, expected_files = finished
  summary, error = _one_line_user_error(lambda: trainer.train_and_evaluate(_config(), workdir))
  after = _snapshot(workdir)
  if kind == 'checkpoint' or (kind in ('config', 'record') and state != 'missing'):
    assert error is not None, 'a damaged config.json or checkpoint must be refused'
    assert after == before, 'refused, but the workdir changed'
    return 'error'
  assert error is None, f'{kind} {state}: {error}'
  _same_summary(expected, summary)
  with open(os.path.join(workdir, 'summary.json'), encoding='utf-8') as f:
    _same_summary(expected, json.load(f, parse_constant=_refuse))  # strict JSON
  if kind in ('log', 'evals', 'lock'):  # a finished run re-run opens none of these
    assert {k: v for k, v in after.items() if k != '.lock'} == {
        k: v for k, v in before.items() if k != '.lock'}
    assert open(os.path.join(workdir, '.lock'), 'rb').read() == b''
  elif kind == 'config':  # rewritten, as it was, since the checkpoints carry its digest
    assert after == {**before, 'config.json': expected_files['config.json']}
  elif kind == 'record':  # an unfinished save: set aside, and the run starts over
    assert os.path.isdir(os.path.join(workdir, 'unreadable_checkpoints', '4'))
    assert os.path.isfile(os.path.join(workdir, 'checkpoints', '4', checkpoint_record.RECORD_FILE))
  return 'proceeds'


def _check_evaluate(kind, state, workdir, finished, before):
  """A damaged config.json or checkpoint file: one line, nothing changed; anything else:
  the evaluation runs and scores the checkpoint as the training did."""
  summary = finished[1]
  outcome, error = _one_line_user_error(
      lambda: evaluation.evaluate_workdir(workdir, names=['accuracy']))
  if kind in ('config', 'checkpoint', 'record'):
    assert error is not None, 'a damaged config.json or checkpoint must be refused'
    assert _snapshot(workdir) == before, 'refused, but the workdir changed'
    return 'error'
  assert error is None, f'{kind} {state}: {error}'
  assert outcome.step == 4 and outcome.metrics['test/top1'] == summary['test/top1']
  return 'proceeds'


def _catalogue(finished, tmp_path, check, together=()):
  """Runs `check` on a fresh copy of the finished workdir for every (file, state); returns
  {(file, state): 'error' | 'proceeds'} and fails listing every case that went wrong. The files
  of the kinds in `together` (those the entry never opens) are damaged all at once, per state,
  to save runs."""
  source, _, files = finished
  groups = [[f] for f in sorted(files) if _kind(f) not in together]
  groups.append(sorted(f for f in files if _kind(f) in together))
  outcomes, failures = {}, []
  for i, group in enumerate(g for g in groups if g):
    for state in STATES:
      workdir = str(tmp_path / f'{i}_{state}')
      shutil.copytree(source, workdir)
      for relative in group:
        _damage(os.path.join(workdir, relative), state)
      before = _snapshot(workdir)
      try:
        outcome = check(_kind(group[0]), state, workdir, finished, before)
        outcomes.update({(relative, state): outcome for relative in group})
      except AssertionError as e:
        failures.append(f'{group} {state}: {str(e).splitlines()[0][:300]}')
      shutil.rmtree(workdir)
  assert not failures, f'{len(failures)} of {len(files) * len(STATES)} cases:\n' + '\n'.join(
      failures)
  return outcomes


def _sizes(outcomes):
  sizes = {}
  for (relative, _), outcome in outcomes.items():
    key = (_kind(relative), outcome)
    sizes[key] = sizes.get(key, 0) + 1
  return sizes


def test_every_damaged_workdir_file_at_the_train_entry(finished, tmp_path, monkeypatch):
  # The train step's trace before the claim (`ImageHooks.trace`) reads the config alone, the
  # same in every case, and never the workdir: it ran in `finished`'s run, and its ~70 repeats
  # here were most of this test's time. The files a re-run of a finished run never opens (logs,
  # evals/, the lock) are damaged all at once, per state, as at the evaluate entry.
  monkeypatch.setattr(trainer.ImageHooks, 'trace', lambda self: None)
  outcomes = _catalogue(finished, tmp_path, _check_train, together=('log', 'evals', 'lock'))
  print('train entry:', _sizes(outcomes))
  assert len(outcomes) >= 3 * 20  # config, lock, logs, evals and >= 15 checkpoint files


def test_every_damaged_workdir_file_at_the_evaluate_entry(finished, tmp_path):
  outcomes = _catalogue(finished, tmp_path, _check_evaluate, together=('log', 'lock', 'summary'))
  print('evaluate entry:', _sizes(outcomes))
  assert len(outcomes) >= 3 * 20


def test_a_workdir_without_config_json_is_refused_unless_its_checkpoints_record_this_config(
    finished, tmp_path):
  source, expected, _ = finished
  workdir = str(tmp_path / 'run')
  shutil.copytree(source, workdir)
  os.remove(os.path.join(workdir, 'config.json'))
  before = _snapshot(workdir)
  other = _config()
  other.optim.lr = 0.05
  with pytest.raises(workdir_lib.WorkdirError, match=r'has no config.json and its checkpoint 4 '
                                                     r'was trained with a different config; use '
                                                     r'a new --workdir'):
    trainer.train_and_evaluate(other, workdir)
  assert _snapshot(workdir) == before
  resumable = _config()
  resumable.log_every_steps = 3  # not part of the digest: may change on resume
  assert trainer.train_and_evaluate(resumable, workdir) == expected
  assert os.path.isfile(os.path.join(workdir, 'config.json'))


def test_a_path_too_long_for_the_file_system_is_refused_before_anything_is_written(tmp_path):
  name_max = os.pathconf(str(tmp_path), 'PC_NAME_MAX')
  path_max = os.pathconf(str(tmp_path), 'PC_PATH_MAX')
  long_name = str(tmp_path / ('n' * (name_max + 1)) / 'run')
  with pytest.raises(workdir_lib.WorkdirError, match=rf'--workdir has a name of {name_max + 1} '
                                                     rf'bytes .*give a shorter --workdir'):
    trainer.train_and_evaluate(_config(), long_name)
  # Each name fits, the whole path does not leave room for the checkpoints' own paths.
  deep = str(tmp_path)
  while len(deep) < path_max - workdir_lib.LONGEST_INSIDE + 10:
    deep = os.path.join(deep, 'd' * min(200, name_max))
  with pytest.raises(workdir_lib.WorkdirError, match=r'--workdir is a path of \d+ bytes; runs '
                                                     r'need it under \d+'):
    trainer.train_and_evaluate(_config(), deep)
  assert os.listdir(tmp_path) == []


def test_unreadable_checkpoints_print_no_background_tracebacks(finished, tmp_path, capfd,
                                                              monkeypatch):
  """Orbax's restore stops at the first failed read and closes its event loop; tensorstore's
  other reads still complete and call into the closed loop, each an unraisable 'Event loop is
  closed' that Python prints as a traceback from tensorstore's thread (sys.unraisablehook).
  Verified bytes never reach tensorstore."""
  unraisable = []
  monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
  source = finished[0]
  workdir = str(tmp_path / 'run')
  shutil.copytree(source, workdir)
  for folder, _, names in os.walk(os.path.join(workdir, 'checkpoints', '4')):
    for name in names:
      if os.sep + 'd' + os.sep in os.path.join(folder, name):
        _damage(os.path.join(folder, name), 'garbage')
  os.remove(os.path.join(workdir, 'summary.json'))
  capfd.readouterr()
  with pytest.raises(errors.UserError, match=r'no checkpoint in .* can be read'):
    trainer.train_and_evaluate(_config(), workdir)
  time.sleep(0.5)  # the background reads of the failed restore, if any, finish
  err = capfd.readouterr().err
  assert not unraisable, f'{len(unraisable)} background tracebacks: {unraisable[0].exc_value!r}'
  assert 'Traceback' not in err and 'Event loop is closed' not in err, err[-2000:]
