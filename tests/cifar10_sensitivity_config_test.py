"""configs/cifar10_sensitivity.py: its tokens build the study's configs; bad tokens are refused;
benchmarks/cifar10_subset.py picks a class-balanced subset. (configs_test.py runs `smoke`.)"""
import importlib.util
import os

import numpy as np
import pytest

from configs import cifar10_sensitivity
from sdd_jax.config import validation as config_validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _valid(arg):
  config = cifar10_sensitivity.get_config(arg)
  config_validation.validate(config)
  return config


@pytest.mark.parametrize('arg, width, weight', [
    (None, 16, 1.0), ('width=8', 8, 1.0), ('width=64,weight=0.25', 64, 0.25),
    ('width=32,ce', 32, None), ('weight=0.1,seed=2', 16, 0.1)])
def test_tokens(arg, width, weight):
  config = _valid(arg)
  assert config.model.name == 'resnet18_cifar' and config.model.kwargs.width == width
  assert (config.data.source, config.data.num_classes) == ('npz', 10)
  assert config.data.path == os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data',
                                                           'cifar10'))
  assert config.num_epochs == 8 and tuple(config.optim.lr_boundaries) == (4, 6)
  if weight is None:
    assert not list(config.methods)
  else:
    sdd = config.methods.sd_dropout
    assert (sdd.weight, sdd.temperature, sdd.rate, sdd.direction, sdd.position) == (
        weight, 3.0, 0.5, 'both', 4)


def test_data_token_and_errors():
  assert _valid('data=/tmp/sub,ce,seed=3').data.path == '/tmp/sub'
  assert _valid('seed=3').seed == 3
  with pytest.raises(ValueError, match='unknown width=12; known: 8, 16, 32, 64'):
    cifar10_sensitivity.get_config('width=12')
  with pytest.raises(ValueError, match='weight sets SD-Dropout, which `ce` leaves out'):
    cifar10_sensitivity.get_config('ce,weight=0.5')
  with pytest.raises(ValueError, match=r"unknown config argument\(s\) \['wdth'\]"):
    cifar10_sensitivity.get_config('wdth=8')


def test_subset_is_class_balanced():
  spec = importlib.util.spec_from_file_location(
      'cifar10_subset', os.path.join(ROOT, 'benchmarks', 'cifar10_subset.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  labels = np.array([0] * 5 + [1] * 7 + [2] * 4)
  keep = module.subset_indices(labels, 3, seed=0)
  assert np.all(np.diff(keep) > 0)
  assert np.bincount(labels[keep]).tolist() == [3, 3, 3]
  assert keep.tolist() == module.subset_indices(labels, 3, seed=0).tolist()
  assert module.subset_indices(labels, 0, seed=0).tolist() == list(range(16))
  with pytest.raises(SystemExit, match='class 2 has 4 examples'):
    module.subset_indices(labels, 5, seed=0)
