"""train.py: a bad input gives one line on stderr, exit code 1, and no workdir (a few real
subprocesses; the catalogue runs in-process in config_cli_test.py and bad_inputs_test.py)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(workdir, *overrides, config='configs/cifar100_resnet18_sdd.py:smoke'):
  command = [sys.executable, 'train.py', '--config', config, '--workdir', workdir, *overrides]
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ))  # conftest's 8 simulated devices


@pytest.mark.parametrize('overrides,message', [
    (['--config.optim.lr=-1.0'], 'error: config.optim.lr: must be > 0, got -1.0'),
    (['--config.batch_size=12'], 'error: config.batch_size: 12 does not divide over 8 devices'),
    (['--config.methods.sd_dropout.rate=1.0'],
     'error: config.methods.sd_dropout.rate: must be in [0, 1), got 1.0'),
    (['--config.data.source=npz', '--config.data.path=/nonexistent'], 'error: '),
    # Before absl parses the flags (config_cli.load), where config_flags raised tracebacks:
    (['--config.optim.lrr=0.1'], "error: --config.optim.lrr: no such field ('lrr'); did you "
                                 'mean lr? known here: lr, lr_boundaries'),
    (['CONFIG=configs/cifar100_resnet18_sdd.py:smoke,seed=x'],
     'error: --config configs/cifar100_resnet18_sdd.py:smoke,seed=x: config argument seed=x: '
     'seed must be an integer'),
    (['--config.optim.lr=inf'], 'error: config.optim.lr: must be a finite number (> 0), got inf'),
    # A translation config (config.task, through sdd_jax/tasks.py): its validation, its data.
    (['CONFIG=configs/iwslt15_pskd.py:de_en,smoke', '--config.methods.ps_kd.alpha=2.0'],
     'error: config.methods.ps_kd.alpha: must be in [0, 1], got 2.0'),
    (['CONFIG=configs/iwslt15_pskd.py:de_en', '--config.data.path=/nonexistent'],
     "error: config.data.path '/nonexistent' is not a folder"),
])
def test_bad_input_is_one_line_and_leaves_no_workdir(tmp_path, overrides, message):
  workdir = str(tmp_path / 'run')
  config = [o.split('=', 1)[1] for o in overrides if o.startswith('CONFIG=')]
  overrides = [o for o in overrides if not o.startswith('CONFIG=')]
  result = _train(workdir, *overrides, **({'config': config[0]} if config else {}))
  assert result.returncode == 1, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and errors[0].startswith(message), result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(workdir)

