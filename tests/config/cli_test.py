"""config_cli: the config file and the --config.* overrides of train.py, evaluate.py and the
sweep, each mistake one line `error: ...` with exit status 1 (in-process: exit_on_error on an
argv list, stderr captured), the override catalogue generated from the schema."""
import os
import re

import pytest

from sdd_jax.config import cli as config_cli
from sdd_jax.config import schema as config_schema
from sdd_jax.config import validation as config_validation
from sdd_jax import evaluation
from sdd_jax import evaluators
from sdd_jax import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, 'configs', 'cifar100_resnet18_sdd.py')


def _one_line_exit(capsys, fn, *args):
  """Runs config_cli.exit_on_error(fn, *args): -> the one stderr line (exit status 1)."""
  with pytest.raises(SystemExit) as info:
    config_cli.exit_on_error(fn, *args)
  assert info.value.code == 1
  err = capsys.readouterr().err
  assert 'Traceback' not in err
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), err
  return lines[0]


def _train(*args, config=CONFIG + ':smoke'):
  return ['train.py', '--config', config, '--workdir', '/nowhere', *args]


def _syntax_error(tmp_path):
  path = tmp_path / 'broken.py'
  path.write_text('def get_config(arg=None):\n  return {\n')
  return str(path)


def _no_get_config(tmp_path):
  path = tmp_path / 'empty.py'
  path.write_text('X = 1\n')
  return str(path)


def _wrong_type_in_file(tmp_path):
  path = tmp_path / 'typed.py'
  path.write_text('from configs import common\n\n\ndef get_config(arg=None):\n'
                  '  config = common.recipe()\n  config.optim.lr = "fast"\n  return config\n')
  return str(path)


LOADING = [
    ('missing', lambda tmp: ['x', '--config', str(tmp / 'nope.py')],
     r'--config .*nope.py: no such file; give the path of a config file'),
    ('misspelt', lambda tmp: ['x', '--config', CONFIG + 'x'],
     r'cifar100_resnet18_sdd.pyx: no such file; did you mean cifar100_resnet18_sdd.py'),
    ('empty', lambda tmp: ['x', '--config='], r'--config is empty'),
    ('syntax', lambda tmp: ['x', '--config', _syntax_error(tmp)],
     r'broken.py: line 2: .*; fix the config file'),
    ('no_get_config', lambda tmp: ['x', '--config', _no_get_config(tmp)],
     r'empty.py: the file defines no get_config'),
    ('wrong_type_in_file', lambda tmp: ['x', '--config', _wrong_type_in_file(tmp)],
     r"typed.py: line 6: Could not override field 'lr'"),
    ('unknown_arg', lambda tmp: _train(config=CONFIG + ':smoek'),
     r":smoek: unknown config argument\(s\) \['smoek'\]; known: smoke, seed=N"),
    ('seed_not_int', lambda tmp: _train(config=CONFIG + ':smoke,seed=1.5'),
     r'config argument seed=1.5: seed must be an integer'),
    ('ablation_rate', lambda tmp: _train(
        config=os.path.join(ROOT, 'configs', 'cifar100_ablations.py') + ':rate=half'),
     r'config argument rate=half: rate must be a number'),
    ('ablation_data', lambda tmp: _train(
        config=os.path.join(ROOT, 'configs', 'cifar100_ablations.py') + ':data=mnist'),
     r'unknown data=mnist; known: cifar100'),
    ('override_first', lambda tmp: ['x', '--config.seed=1', '--config', CONFIG],
     r'--config.seed=1 in argv before a value for --config'),
]


@pytest.mark.parametrize('name,argv,message', LOADING, ids=[c[0] for c in LOADING])
def test_config_loading_mistakes_are_one_line(capsys, tmp_path, name, argv, message):
  del name
  line = _one_line_exit(capsys, config_cli.load, argv(tmp_path))
  assert re.search(message, line), line


def _typo(word: str) -> str:
  """A misspelling difflib must recover: the last two letters swapped, or one doubled."""
  return word[:-2] + word[-1] + word[-2] if len(word) > 3 and word[-1] != word[-2] else word + 'x'


# Misspelt override paths, one per part of every field of the config (static fields, the
# config's method and evaluator sections, and the sections themselves).
# Fields a config may leave out (optim.name, optim.schedule: their defaults then apply) cannot be
# overridden where absent, so only the fields this config has are suggested.
_LOADED = config_cli.load(['train.py', '--config', CONFIG]).to_dict()


def _in_config(path: str) -> bool:
  node = _LOADED
  for part in path.split('.'):
    if not isinstance(node, dict) or part not in node:
      return False
    node = node[part]
  return True


TYPO_CASES = sorted({(f.path, i) for f in config_schema.STATIC + tuple(
    config_schema.method_fields('sd_dropout') + config_schema.evaluator_fields('accuracy'))
                     for i in range(len(f.path.split('.'))) if f.kind != 'any'
                     and _in_config(f.path)})


@pytest.mark.parametrize('path,index', TYPO_CASES, ids=[f'{p}@{i}' for p, i in TYPO_CASES])
def test_a_misspelt_override_names_the_part_and_the_nearest(capsys, path, index):
  parts = path.split('.')
  wrong = parts[index]
  parts[index] = _typo(wrong)
  bad = '.'.join(parts)
  line = _one_line_exit(capsys, config_cli.load, _train(f'--config.{bad}=1'))
  assert line.startswith(f"error: --config.{bad}: no such field ({parts[index]!r}); did you "
                         f'mean {wrong}'), line


WRONG_VALUES = {'int': ('abc', '2.5'), 'number': ('abc',), 'bool': ('maybe',)}
VALUE_CASES = [(f.path, text) for f in config_schema.STATIC for text in WRONG_VALUES.get(f.kind, ())]


@pytest.mark.parametrize('path,text', VALUE_CASES, ids=[f'{p}={t}' for p, t in VALUE_CASES])
def test_an_override_value_of_the_wrong_type_is_one_line(capsys, path, text):
  line = _one_line_exit(capsys, config_cli.load, _train(f'--config.{path}={text}'))
  assert line.startswith(f'error: --config.{path}={text}: '), line
  assert f'config.{path} takes ' in line


@pytest.mark.parametrize('text', ['nan', 'inf', '-inf'])
def test_non_finite_override_values_are_refused_by_validation(text):
  config = config_cli.load(_train(f'--config.optim.lr={text}'))
  with pytest.raises(config_validation.ConfigError, match=r'^config.optim.lr: must be a finite'):
    config_validation.validate(config)


def test_overrides_parse_like_config_flags():
  config = config_cli.load(_train('--config.optim.lr=0.05', '--config.model.head_hidden=(512,)',
                                  '--config.data.flip=false', '--config.seed', '3',
                                  '--noconfig.optim.nesterov', '--config.data.data_dir=/d'))
  assert (config.optim.lr, config.model.head_hidden, config.data.flip, config.seed,
          config.optim.nesterov, config.data.data_dir) == (0.05, (512,), False, 3, False, '/d')
  assert config.is_locked


SECTION_CASES = [
    ('methods.sd_dropuot.rate', r"no such field \('sd_dropuot'\); did you mean sd_dropout\?"),
    ('methods.cs_kd.weight', r'this config does not set methods.cs_kd; add it with the dict '
                             r'form, which replaces the whole methods section: '
                             r'--config.methods="\{\'sd_dropout\': \{\}, \'cs_kd\': '
                             r'\{\'weight\': 0.1\}\}"'),
    ('evals.accuracy.prefix', r'this config does not set evals.accuracy.prefix and an override '
                              r'cannot add it: set it in a config file'),
    ('evals.acuracy.every_epochs', r"no such field \('acuracy'\); did you mean accuracy\?"),
    ('optim.lr.value', r'config.optim.lr is a value \(0.1\), not a section'),
]


def test_the_dict_form_the_error_names_adds_a_method_and_replaces_the_section(capsys):
  line = _one_line_exit(capsys, config_cli.load, _train('--config.methods.cs_kd.weight=0.3'))
  suggested = re.search(r'(--config.methods=)"([^"]*)"', line)  # as a shell passes it
  config = config_cli.load(_train(suggested.group(1) + suggested.group(2)))
  assert config.methods.to_dict() == {'sd_dropout': {}, 'cs_kd': {'weight': 0.1}}
  config = config_cli.load(_train("--config.methods={'cs_kd': {'temperature': 4.0}}"))
  assert config.methods.to_dict() == {'cs_kd': {'temperature': 4.0}}  # sd_dropout is gone


@pytest.mark.parametrize('path,message', SECTION_CASES, ids=[c[0] for c in SECTION_CASES])
def test_misspelt_methods_and_evaluators_are_one_line(capsys, path, message):
  line = _one_line_exit(capsys, config_cli.load, _train(f'--config.{path}=0.3'))
  assert re.search(message, line), line


EVAL_TYPOS = [(f.path, _typo(f.path.rsplit('.', 1)[1])) for name in
              evaluators.EVALUATORS.names()
              for f in config_schema.evaluator_fields(name)]


@pytest.mark.parametrize('path,typo', EVAL_TYPOS, ids=[p for p, _ in EVAL_TYPOS])
def test_evaluate_overrides_name_the_nearest_field(capsys, path, typo):
  bad = path.rsplit('.', 1)[0] + '.' + typo
  line = _one_line_exit(capsys, config_cli.load_overrides,
                        ['evaluate.py', '--workdir=/w', f'--config.{bad}=1'],
                        evaluation.evals_template())
  assert line.startswith(f"error: --config.{bad}: no such field ({typo!r}); did you mean "
                         f"{path.rsplit('.', 1)[1]}"), line


def test_evaluate_override_values_are_typed(capsys):
  template = evaluation.evals_template()
  line = _one_line_exit(capsys, config_cli.load_overrides,
                        ['evaluate.py', '--config.evals.odin.holdout=many'], template)
  assert line.startswith('error: --config.evals.odin.holdout=many: ') and 'takes int' in line
  config = config_cli.load_overrides(['evaluate.py', "--config.evals.odin.sets=('lsun',)",
                                      '--config.eval_batch_size=8'], template)
  assert config.evals.odin.sets == ('lsun',) and config.eval_batch_size == 8


SWEEPS = [
    (['--sweep', 'optim.lrr=0.1,0.2'], r"--sweep point optim.lrr=0.1: --config.optim.lrr: no "
                                       r"such field \('lrr'\); did you mean lr\?"),
    (['--sweep', 'seed=0,1', '--sweep', 'methods.sd_dropout.rate=0.1,1.5'],
     r'--sweep point seed=0,methods.sd_dropout.rate=1.5: config.methods.sd_dropout.rate: must '
     r'be in \[0, 1\), got 1.5'),
    (['--sweep', 'optim.lr=0.1,nan'], r'optim.lr=nan: config.optim.lr: must be a finite'),
    (['--sweep', 'batch_size=16,big'], r'--config.batch_size=big: invalid literal for int'),
]


@pytest.mark.parametrize('args,message', SWEEPS, ids=[a[1] for a, _ in SWEEPS])
@pytest.mark.parametrize('print_only', [True, False], ids=['print_only', 'run'])
def test_the_sweep_validates_every_point_before_running_any(capsys, monkeypatch, args, message,
                                                            print_only):
  monkeypatch.setattr(sweep, 'run_all', lambda *a, **k: pytest.fail('a run was started'))
  rc = sweep.main(['--config', CONFIG + ':smoke', '--workdir_root', '/w', *args]
                  + (['--print_only'] if print_only else []))
  out = capsys.readouterr()
  assert rc == 1 and out.out == ''
  lines = out.err.strip().splitlines()
  assert len(lines) == 1 and re.search(message, lines[0]), out.err


def test_the_sweep_refuses_a_missing_config(capsys):
  assert sweep.main(['--config', 'configs/nope.py', '--workdir_root', '/w', '--print_only']) == 1
  assert capsys.readouterr().err.startswith('error: --config configs/nope.py: no such file')
