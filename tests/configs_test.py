"""Every config file loads, validates, and passes its `smoke` run (through the task registry:
`config.task`, default classification)."""
import glob
import importlib.util
import os

import pytest

from configs import common
from sdd_jax.config import validation as config_validation
from sdd_jax import models
from sdd_jax import tasks
from tests import workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                      if os.path.basename(p) not in ('common.py', '__init__.py'))


def load(path, arg=None):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize('path', CONFIG_FILES, ids=os.path.basename)
def test_full_config_validates_and_documents_its_command(path):
  config = load(path)
  tasks.validate(config)
  with open(path) as f:
    text = f.read()
  name = os.path.relpath(path, ROOT)
  assert f'python train.py --config {name}' in text, 'the docstring gives the exact command'


# A smoke run that would repeat another file's exactly: a run reads nothing but its config, and
# this file's smoke config is that file's, field for field (test_a_smoke_config_equal_to_...).
SAME_SMOKE_RUN = {'cifar100_ablations.py': 'cifar100_resnet18_sdd.py'}


@pytest.mark.parametrize('path', [p for p in CONFIG_FILES
                                  if os.path.basename(p) not in SAME_SMOKE_RUN],
                         ids=os.path.basename)
def test_smoke_run(path, tmp_path):
  config = load(path, 'smoke')
  task = tasks.task_of(config)
  summary = task.train_and_evaluate(config, str(tmp_path))
  assert summary['steps'] >= 2 and 0 <= summary[task.printed[0]] <= 100
  if task is not tasks.TASKS.get(tasks.DEFAULT):  # the diagnostics below are classification's
    return
  # The collapse diagnostics (sdd_jax/metrics/diagnostics.py): a share per weighted term, summing to 1.
  for r in workdirs.read_jsonl(os.path.join(tmp_path, 'metrics.jsonl')):
    if 'train/loss' in r:
      terms = ['ce'] + [name for name in config.methods if f'train/loss_{name}' in r]
      assert sorted(k for k in r if k.startswith('train/share_')) == sorted(
          f'train/share_{name}' for name in terms)
      assert abs(sum(r[f'train/share_{name}'] for name in terms) - 1) < 1e-4, r
      assert 0 < r['train/confidence'] <= 100 and 0 <= r['train/dead_features'] <= 1, r


@pytest.mark.parametrize('name, same', SAME_SMOKE_RUN.items())
def test_a_smoke_config_equal_to_another_files_is_run_as_that_one(name, same):
  path = os.path.join(ROOT, 'configs', name)
  assert path in CONFIG_FILES
  assert load(path, 'smoke').to_dict() == load(os.path.join(ROOT, 'configs', same),
                                               'smoke').to_dict()


def test_demo_ce_is_the_baseline_without_methods():
  demo = os.path.join(ROOT, 'configs', 'demo.py')
  assert list(load(demo).methods) == ['sd_dropout']
  assert not list(load(demo, 'ce').methods)


def test_an_unknown_config_argument_is_refused():
  with pytest.raises(ValueError, match=r"unknown config argument\(s\) \['smoek'\]; known: smoke"):
    load(os.path.join(ROOT, 'configs', 'cifar100_resnet18_ce.py'), 'smoek')


def test_smoke_uses_each_models_registered_tiny_variant():
  """`:smoke` shrinks any model through its registry entry (no family guessed by name)."""
  spot_checks = {'resnet50': ('width', 4), 'densenet121_cifar': ('growth_rate', 4),
                 'vit_small_cifar': ('hidden_size', 16)}
  for name in models.MODELS.names():
    config = common.recipe()
    config.model.name = name
    config.model.kwargs = {'stage_sizes': (5, 5, 5, 5)}  # the tiny variant wins
    kwargs = dict(common.smoke(config).model.kwargs)
    assert kwargs == models.tiny_kwargs(name), name
    assert kwargs['stage_sizes'] == (1, 1, 1, 1), name
    if name in spot_checks:
      key, value = spot_checks[name]
      assert kwargs[key] == value, name
    config_validation.validate(config)


@pytest.mark.parametrize('arg, langs, ps_kd', [
    (None, ('de', 'en'), True), ('de_en', ('de', 'en'), True), ('de_en,ls', ('de', 'en'), False),
    ('en_de', ('en', 'de'), True), ('en_de,ls,seed=2', ('en', 'de'), False)])
def test_the_iwslt15_direction_token_gives_the_two_former_configs(arg, langs, ps_kd):
  """configs/iwslt15_pskd.py:<direction> is what configs/iwslt15_{de_en,en_de}_pskd.py were:
  the translation recipe of that direction, PS-KD (alpha_T 0.8) unless `ls`; the smoke run of
  `en_de` is the default's (test_smoke_run) with the languages swapped, so it is not run."""
  path = os.path.join(ROOT, 'configs', 'iwslt15_pskd.py')
  expected = common.translation_recipe(*langs)
  if ps_kd:
    expected.methods.ps_kd = {'alpha': 0.8}
  if arg and 'seed=2' in arg:
    expected.seed = 2
  config = load(path, arg)
  assert config.to_dict() == expected.to_dict()
  assert config.data.path == f'data/iwslt15_{langs[0]}_{langs[1]}'
  tasks.validate(config)


def test_the_iwslt15_config_takes_one_direction():
  path = os.path.join(ROOT, 'configs', 'iwslt15_pskd.py')
  with pytest.raises(ValueError, match='one direction, got de_en, en_de'):
    load(path, 'en_de,de_en')
  with pytest.raises(ValueError, match=r"unknown config argument\(s\) \['de_fr'\]; known: smoke, "
                                       r'seed=N, ls, de_en, en_de'):
    load(path, 'de_fr')
