"""sdd_jax.sweep: the grid, the workdir names, the commands, and failures reported at the end."""
import io
import subprocess
import sys
import types

import pytest

from sdd_jax import sweep

C = 'configs/cifar100_resnet18_ce.py'  # every point is loaded and validated before any runs


def test_expand_is_the_product_first_sweep_slowest():
  grid = sweep.expand([('seed', ['0', '1']), ('methods.sd_dropout.rate', ['0.1', '0.3', '0.5'])])
  assert grid == [{'seed': s, 'methods.sd_dropout.rate': r}
                  for s in ('0', '1') for r in ('0.1', '0.3', '0.5')]
  assert sweep.expand([]) == [{}]


def test_parse_sweep_keeps_bracketed_commas():
  assert sweep.parse_sweep('model.head_hidden=(),(512,)') == ('model.head_hidden', ['()', '(512,)'])
  assert sweep.parse_sweep('config.seed=0, 1') == ('seed', ['0', '1'])
  assert sweep.split_values('"a,b",c') == ['"a,b"', 'c']
  with pytest.raises(ValueError, match='expected KEY=V1,V2'):
    sweep.parse_sweep('seed')
  with pytest.raises(ValueError, match='given twice'):
    sweep.expand([('seed', ['0']), ('seed', ['1'])])


def test_print_only_prints_one_command_per_run():
  out = io.StringIO()
  rc = sweep.main(['--config', 'configs/cifar100_resnet18_sdd.py:smoke', '--workdir_root', '/w',
                   '--sweep', 'seed=0,1', '--sweep', 'methods.sd_dropout.direction=both,forward',
                   '--print_only'], out=out)
  assert rc == 0
  c = 'python train.py --config configs/cifar100_resnet18_sdd.py:smoke --workdir'
  assert out.getvalue() == (
      f'{c} /w/seed=0,methods.sd_dropout.direction=both --config.seed=0 '
      '--config.methods.sd_dropout.direction=both\n'
      f'{c} /w/seed=0,methods.sd_dropout.direction=forward --config.seed=0 '
      '--config.methods.sd_dropout.direction=forward\n'
      f'{c} /w/seed=1,methods.sd_dropout.direction=both --config.seed=1 '
      '--config.methods.sd_dropout.direction=both\n'
      f'{c} /w/seed=1,methods.sd_dropout.direction=forward --config.seed=1 '
      '--config.methods.sd_dropout.direction=forward\n')


def test_workdir_names_are_sanitised_and_quoted():
  assert sweep.run_name({'model.head_hidden': '(512,)'}) == 'model.head_hidden=_512,_'
  assert sweep.run_name({}) == 'default'
  out = io.StringIO()
  sweep.main(['--config', C, '--workdir_root', 'w', '--sweep', 'model.head_hidden=(512,)',
              '--print_only'], out=out)
  assert out.getvalue() == (f"python train.py --config {C} --workdir w/model.head_hidden=_512,_ "
                            "'--config.model.head_hidden=(512,)'\n")


def test_local_runs_continue_past_a_failure_and_exit_nonzero(monkeypatch):
  calls = []

  def fake_run(cmd, check):
    calls.append(cmd)
    return types.SimpleNamespace(returncode=1 if '--config.seed=1' in cmd else 0)

  monkeypatch.setattr(subprocess, 'run', fake_run)
  out = io.StringIO()
  rc = sweep.main(['--config', C, '--workdir_root', 'w', '--sweep', 'seed=0,1,2'], out=out)
  assert rc == 1
  assert calls == [[sys.executable, 'train.py', '--config', C, '--workdir', f'w/seed={s}',
                    f'--config.seed={s}'] for s in '012']
  text = out.getvalue()
  assert '2 of 3 runs succeeded' in text
  assert f'FAILED (exit status 1): {sys.executable} train.py --config {C} --workdir w/seed=1' \
      in text
  assert text.count('FAILED') == 1


def test_bad_sweep_is_a_one_line_error(capsys):
  assert sweep.main(['--config', C, '--workdir_root', 'w', '--sweep', 'seed=0,,1']) == 2
  assert 'an empty value' in capsys.readouterr().err
