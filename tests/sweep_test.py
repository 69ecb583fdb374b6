"""sdd_jax.sweep: the grid, the workdir names, the commands, and failures reported at the end."""
import io
import json
import os
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


D = 'configs/demo.py'  # its :ce token drops SD-Dropout: the two arms of one comparison


def test_the_arg_axis_adds_a_token_to_the_configs_own():
  assert sweep.parse_sweep('arg=ce,') == ('arg', ['ce', ''])
  assert sweep.config_spec(D, {'arg': 'ce'}) == f'{D}:ce'
  assert sweep.config_spec(D + ':smoke', {'arg': 'ce'}) == f'{D}:smoke,ce'
  assert sweep.config_spec(D + ':smoke', {'arg': ''}) == f'{D}:smoke'
  assert sweep.config_spec(D, {'arg': ''}) == D
  with pytest.raises(ValueError, match='one :ARG token'):
    sweep.parse_sweep('arg="ce,smoke"')


def test_one_sweep_puts_both_arms_and_their_seeds_in_one_root():
  out = io.StringIO()
  assert sweep.main(['--config', D + ':smoke', '--workdir_root', '/w', '--sweep', 'arg=ce,',
                     '--sweep', 'seed=0,1', '--print_only'], out=out) == 0
  c = 'python train.py --config'
  assert out.getvalue().splitlines() == [
      f'{c} {D}:smoke,ce --workdir /w/arg=ce,seed=0 --config.seed=0',
      f'{c} {D}:smoke,ce --workdir /w/arg=ce,seed=1 --config.seed=1',
      f'{c} {D}:smoke --workdir /w/arg=,seed=0 --config.seed=0',
      f'{c} {D}:smoke --workdir /w/arg=,seed=1 --config.seed=1']


def _finished(workdir, config):
  """A workdir as train.py leaves it, as far as the claim reads it: its config.json."""
  from sdd_jax import methods
  from sdd_jax.workdir import claim
  os.makedirs(workdir)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(claim.config_json(config, methods.resolve_config), f)


def test_a_second_sweep_into_the_same_root_is_refused_before_any_run(tmp_path, monkeypatch,
                                                                       capsys):
  from sdd_jax.config import cli
  from sdd_jax.workdir import claim
  root = str(tmp_path)
  for seed in '01':  # the first sweep: CE, seeds 0 and 1, finished
    _finished(os.path.join(root, f'seed={seed}'),
              cli.load(['t', '--config', D + ':smoke,ce', f'--config.seed={seed}']))
  # The failure: each run of a second sweep (SD-Dropout) into that root is refused by its claim.
  for seed in '01':
    with pytest.raises(claim.WorkdirError, match='holds a run of a different config'):
      claim.check_config(os.path.join(root, f'seed={seed}'),
                         cli.load(['t', '--config', D + ':smoke', f'--config.seed={seed}']))
  monkeypatch.setattr(sweep, 'run_all', lambda *a, **k: pytest.fail('a run was started'))
  assert sweep.main(['--config', D + ':smoke', '--workdir_root', root,
                     '--sweep', 'seed=0,1']) == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith('error: --workdir ')
  assert 'seed=0 holds a run of a different config' in err and '--sweep "arg=T1,T2"' in err


def test_the_arg_axis_sweeps_both_arms_into_one_root_and_resumes(tmp_path, monkeypatch):
  from sdd_jax.config import cli
  root = str(tmp_path)
  # Half of the grid finished already: re-running the sweep resumes it, nothing is refused.
  _finished(os.path.join(root, 'arg=ce,seed=0'),
            cli.load(['t', '--config', D + ':smoke,ce', '--config.seed=0']))
  _finished(os.path.join(root, 'arg=,seed=0'),
            cli.load(['t', '--config', D + ':smoke', '--config.seed=0']))
  ran = []
  monkeypatch.setattr(sweep, 'run_all', lambda commands, out: ran.extend(commands) or [])
  assert sweep.main(['--config', D + ':smoke', '--workdir_root', root, '--sweep', 'arg=ce,',
                     '--sweep', 'seed=0,1'], out=io.StringIO()) == 0
  workdirs = [c[c.index('--workdir') + 1] for c in ran]
  assert workdirs == [os.path.join(root, n) for n in ('arg=ce,seed=0', 'arg=ce,seed=1',
                                                      'arg=,seed=0', 'arg=,seed=1')]
