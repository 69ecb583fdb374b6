"""The paper-table configs (Tables 1, 3, 9-14): every documented token builds a valid config
with the paper's settings; bad tokens are refused. No training (configs_test.py runs `smoke`)."""
import json

import pytest

from configs import cifar100_ablations
from configs import cifar100_dropout_baseline
from configs import cub200_resnet18
from configs import dogs_resnet18
from configs import imagenet_resnet152_sdd
from sdd_jax.config import cli as config_cli
from sdd_jax.config import validation as config_validation
from sdd_jax import methods
from sdd_jax import parallel
from sdd_jax.workdir import claim as workdir


def _valid(module, arg):
  config = module.get_config(arg)
  config_validation.validate(config)
  return config


@pytest.mark.parametrize('module, name, classes', [(cub200_resnet18, 'caltech_birds2011', 200),
                                                   (dogs_resnet18, 'stanford_dogs', 120)])
@pytest.mark.parametrize('method', ['ce', *methods.compared()])
@pytest.mark.parametrize('sdd', [False, True])
def test_fine_grained_table1(module, name, classes, method, sdd):
  config = _valid(module, f'method={method}' + (',sdd' if sdd else ''))
  assert (config.data.name, config.data.num_classes) == (name, classes)
  assert (config.model.name, config.batch_size, config.num_epochs) == ('resnet18', 32, 200)
  assert (config.data.augment, config.data.image_size, config.data.eval_resize) == (
      'imagenet', 224, 256)
  expected = set() if method == 'ce' else {method}
  if sdd:
    expected.add('sd_dropout')
    assert config.methods.sd_dropout.weight == (1.0 if method == 'ce' else 0.1)
  assert set(config.methods) == expected
  if method == 'cs_kd':
    assert config.methods.cs_kd.weight == 3.0


def test_fine_grained_refuses_unknown_tokens():
  with pytest.raises(ValueError, match='unknown method=kd; known: ce, cs_kd'):
    cub200_resnet18.get_config('method=kd')
  with pytest.raises(ValueError, match=r"unknown config argument\(s\) \['sdq'\]"):
    dogs_resnet18.get_config('sdq')
  assert _valid(cub200_resnet18, 'seed=4').seed == 4


def test_imagenet_table3_and_pod():
  config = _valid(imagenet_resnet152_sdd, None)
  assert (config.model.name, config.batch_size, config.num_epochs) == ('resnet152', 32, 90)
  assert tuple(config.optim.lr_boundaries) == (30, 60) and config.optim.weight_decay == 1e-4
  assert config.methods.sd_dropout.weight == 0.1
  assert config.data.eval_split == 'validation'
  assert not list(_valid(imagenet_resnet152_sdd, 'ce').methods)
  pod = _valid(imagenet_resnet152_sdd, 'pod,ce')
  assert (pod.batch_size, pod.eval_batch_size, pod.optim.warmup_epochs, pod.model.dtype) == (
      2048, 2048, 5, 'bfloat16')
  assert pod.optim.lr == pytest.approx(0.8, rel=1e-12)  # 0.1 x 2048 / 256
  assert not list(pod.methods)
  smoke = _valid(imagenet_resnet152_sdd, 'smoke,pod')
  assert tuple(smoke.model.kwargs['stage_sizes']) == (1, 1, 1, 1)


@pytest.mark.parametrize('arg, model, head, sdd', [
    (None, 'resnet18_cifar', (), dict(direction='both', position=4, rate=0.5, weight=1.0)),
    ('direction=forward', 'resnet18_cifar', (), dict(direction='forward')),
    ('direction=reverse', 'resnet18_cifar', (), dict(direction='reverse')),
    ('model=resnet34_cifar', 'resnet34_cifar', (), dict(weight=1.0)),
    ('model=densenet121_cifar,ce', 'densenet121_cifar', (), None),
    ('position=2', 'resnet18_cifar', (), dict(position=2)),
    ('head=2fc', 'resnet18_cifar', (512,), dict(position=4)),
    ('head=2fc,ce', 'resnet18_cifar', (512,), None),
    ('rate=0.7,weight=5.0,seed=2', 'resnet18_cifar', (), dict(rate=0.7, weight=5.0)),
])
def test_ablation_tokens(arg, model, head, sdd):
  config = _valid(cifar100_ablations, arg)
  assert (config.model.name, tuple(config.model.head_hidden)) == (model, head)
  assert config.data.name == 'cifar100'
  if sdd is None:
    assert not list(config.methods)
  else:
    assert list(config.methods) == ['sd_dropout']
    for field, value in sdd.items():
      assert config.methods.sd_dropout[field] == value, field


def test_ablation_fine_grained_rows_and_errors():
  config = _valid(cifar100_ablations, 'data=dogs,direction=forward')
  assert (config.data.name, config.model.name, config.batch_size) == ('stanford_dogs',
                                                                      'resnet18', 32)
  assert config.methods.sd_dropout.direction == 'forward'
  with pytest.raises(ValueError, match='direction set SD-Dropout, which `ce` leaves out'):
    cifar100_ablations.get_config('ce,direction=forward')
  with pytest.raises(ValueError, match='unknown head=3fc; known: 2fc'):
    cifar100_ablations.get_config('head=3fc')
  with pytest.raises(ValueError, match='methods.sd_dropout.position'):
    _valid(cifar100_ablations, 'position=5')


@pytest.mark.parametrize('arg, name, rate, samples', [
    (None, 'cifar100', 0.5, 1), ('data=cub200', 'caltech_birds2011', 0.5, 1),
    ('data=dogs,rate=0.3', 'stanford_dogs', 0.3, 1), ('equal_steps', 'cifar100', 0.5, 2),
    ('data=dogs,equal_steps,seed=2', 'stanford_dogs', 0.5, 2), ('samples=3', 'cifar100', 0.5, 3)])
def test_dropout_baseline_table11(arg, name, rate, samples):
  config = _valid(cifar100_dropout_baseline, arg)
  assert config.data.name == name
  assert config.methods.to_dict() == {'feature_dropout': {'rate': rate, 'samples': samples}}


def _pod_from_the_command_line(*overrides):
  argv = ['train.py', '--config', 'configs/imagenet_resnet152_sdd.py:pod', *overrides]
  return config_cli.load(argv)


def test_pod_lr_follows_an_overridden_batch_size():
  """Linear scaling by reference: --config.batch_size moves the lr (0.1 per 256 images); an
  explicit --config.optim.lr wins, before or after the batch; what is saved is the number."""
  assert _pod_from_the_command_line().optim.lr == pytest.approx(0.8, rel=1e-12)
  config = _pod_from_the_command_line('--config.batch_size=4096')
  assert (config.batch_size, config.optim.lr) == (4096, pytest.approx(1.6, rel=1e-12))
  config_validation.validate(config)
  saved = json.loads(config.to_json())
  assert saved['optim']['lr'] == pytest.approx(1.6, rel=1e-12) and saved['batch_size'] == 4096
  assert workdir.config_digest(config) == workdir.config_digest(saved)
  assert workdir.config_digest(config) != workdir.config_digest(_pod_from_the_command_line())
  for order in (('--config.optim.lr=0.5', '--config.batch_size=4096'),
                ('--config.batch_size=4096', '--config.optim.lr=0.5')):
    config = _pod_from_the_command_line(*order)
    assert (config.batch_size, config.optim.lr) == (4096, 0.5), order


@pytest.mark.parametrize('devices', [2 ** k for k in range(3, 12)])  # 8, 16, ..., 2048
def test_pod_validates_for_8_to_2048_devices(devices):
  """The validator alone (no training): every power-of-two slice from 8 to 2048 devices, with
  the process counts of 8-accelerator GPU hosts and 4-chip TPU hosts (and one process)."""
  for arg in ('pod', 'pod,ce'):
    config = _valid(imagenet_resnet152_sdd, arg)
    for processes in sorted({1, devices // 8, devices // 4}):
      config_validation.validate_for_devices(config, devices, processes)
      assert parallel.eval_batch_rows(config.eval_batch_size, devices, processes) == 2048
    per_device = {8: 256, 16: 128, 256: 8, 2048: 1}  # the docstring's figures
    if devices in per_device:
      assert config.batch_size // devices == per_device[devices]


def test_pod_batch_that_does_not_divide_is_refused_with_the_fix():
  config = _valid(imagenet_resnet152_sdd, 'pod')
  with pytest.raises(config_validation.ConfigError,
                     match=r'config.batch_size: 2048 does not divide over 4096 devices and 512 '
                           r'processes; use a multiple of 4096 \(set --config.batch_size=...\)'):
    config_validation.validate_for_devices(config, 4096, 512)
  config.eval_batch_size = 1000  # the eval batch is padded instead: no error
  config_validation.validate_for_devices(config, 2048, 256)
  assert parallel.eval_batch_rows(1000, 2048, 256) == 2048
