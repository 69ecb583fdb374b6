"""`--config.profile_steps=A,B`: parsed from the command line, checked (A < B, inside the run,
before the workdir exists), a tiny run writes a TensorBoard profile trace into
`<workdir>/profile`, only process 0 traces, and the field does not block a resume."""
import glob
import os

import jax.numpy as jnp
import ml_collections
import pytest

from configs import cifar100_resnet18_ce
from sdd_jax.config import cli as config_cli
from sdd_jax.config import validation as config_validation
from sdd_jax.train import profiling
from sdd_jax.classification import trainer
from sdd_jax.workdir import claim as workdir_lib


def _traces(workdir):
  return glob.glob(os.path.join(workdir, 'profile', 'plugins', 'profile', '*', '*.xplane.pb'))


@pytest.mark.parametrize('value, total, expected', [
    ((), 0, ()), ([2, 3], 0, (2, 3)), ((1, 8), 8, (1, 8)),
    ((3, 3), 0, None), ((0, 2), 0, None), ((2,), 0, None), (('',), 0, None),
    ((2, 9), 8, None), ((True, 3), 0, None), ((1.0, 3), 0, None)])
def test_check_steps(value, total, expected):
  if expected is not None:
    assert profiling.check_steps(value, total) == expected
    return
  match = (r'config.profile_steps: must be \(\) \(off\) or two steps A,B with 1 <= A < B'
           + (r' <= 8 \(the steps of this run\)' if total else '') + r', got .* \(set '
           r'--config.profile_steps=A,B\)')
  with pytest.raises(config_validation.ConfigError, match=match):
    profiling.check_steps(value, total)


def test_command_line_validation_and_resume():
  argv = ['train.py', '--config', 'configs/cifar100_resnet18_ce.py:smoke']
  config = config_cli.load(argv + ['--config.profile_steps=2,3'])
  assert config.profile_steps == (2, 3)
  config_validation.validate(config)
  plain = config_cli.load(argv)
  assert plain.profile_steps == ()
  assert workdir_lib.config_digest(config) == workdir_lib.config_digest(plain)  # resumable
  older = plain.to_dict()
  del older['profile_steps']  # a config.json written before the field existed
  config_validation.validate(ml_collections.ConfigDict(older))
  with pytest.raises(config_validation.ConfigError, match=r'config.profile_steps: .* got \(3, 2\)'):
    config_validation.validate(config_cli.load(argv + ['--config.profile_steps=3,2']))


def test_steps_past_the_run_are_refused_before_the_workdir_exists(tmp_path):
  config = cifar100_resnet18_ce.get_config('smoke')  # 2 epochs of 4 steps
  config.profile_steps = (2, 9)
  with pytest.raises(config_validation.ConfigError, match=r'A < B <= 8 \(the steps of this run'):
    trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_a_tiny_run_writes_a_trace_into_the_workdir(tmp_path):
  config = cifar100_resnet18_ce.get_config('smoke')
  config.profile_steps = (2, 3)
  trainer.train_and_evaluate(config, str(tmp_path))
  traces = _traces(tmp_path)
  assert len(traces) == 1 and os.path.getsize(traces[0]) > 0


def test_only_process_zero_traces_and_the_hook_brackets_the_steps(tmp_path):
  state = jnp.zeros(3)
  with profiling.step_trace((2, 3), str(tmp_path / 'other'), 8, enabled=False) as before_step:
    for number in range(1, 9):
      before_step(number, state)
  assert not (tmp_path / 'other').exists()
  with profiling.step_trace((2, 3), str(tmp_path / 'main'), 8) as before_step:
    before_step(1, state)
    assert not (tmp_path / 'main').exists()  # not started before step 2
    before_step(2, state)
    before_step(3, state)
    before_step(4, state)  # stops here: the trace is written
    assert len(_traces(tmp_path / 'main')) == 1
    before_step(5, state)
  assert len(_traces(tmp_path / 'main')) == 1  # and not started again
