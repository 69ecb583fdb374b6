"""Export to torchvision's layout and import back (no torch): key names and shapes against
torchvision's committed manifest, the round trip, `python -m sdd_jax.export` on a trained
workdir, `models.load_torchvision`, `config.model.init_from` and the one-line refusals."""
import functools
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from sdd_jax.workdir import checkpoint
from sdd_jax import evaluation
from sdd_jax import export
from sdd_jax.classification import init_from
from sdd_jax import methods
from sdd_jax import models
from sdd_jax.train import optim
from sdd_jax.train import state as state_lib
from sdd_jax.classification import trainer
from sdd_jax.models import build
from sdd_jax.models import torchvision_io
from tests import workdirs

try:  # at import, as tests/torch_export_parity_test.py does: torchvision imported after the
  import torch  # data pipeline's libraries crashes the process (segfault in its C extensions)
  import torchvision
  from safetensors import torch as safetensors_torch
except ImportError:
  torch = torchvision = safetensors_torch = None


def _zeros_like_init(model):
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          jnp.zeros((1, 32, 32, 3)))
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


@pytest.mark.parametrize('name', ['resnet18', 'resnet50', 'resnet152', 'densenet121'])
def test_exported_keys_and_shapes_are_torchvisions(name):
  arrays = torchvision_io.to_torchvision(name, _zeros_like_init(models.get_model(name, num_classes=1000)))
  expected = torchvision_io.manifest(name)  # written by torchvision itself
  assert {k: list(v.shape) for k, v in arrays.items()} == expected


def test_a_cifar_stem_keeps_the_names_and_changes_only_the_stem():
  arrays = torchvision_io.to_torchvision(
      'resnet18_cifar', _zeros_like_init(models.get_model('resnet18_cifar', num_classes=1000)))
  expected = torchvision_io.manifest('resnet18')
  assert sorted(arrays) == sorted(expected)
  assert [k for k in arrays if list(arrays[k].shape) != expected[k]] == ['conv1.weight']
  assert arrays['conv1.weight'].shape == (64, 3, 3, 3)  # 3x3 instead of 7x7


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run'))
  config = workdirs.tiny_config()
  trainer.train_and_evaluate(config, workdir)
  return workdir, config


def test_export_writes_the_checkpoints_network_and_load_torchvision_reads_it_back(trained,
                                                                                  tmp_path):
  workdir, config = trained
  out = str(tmp_path / 'net.safetensors')
  assert export.main(['--workdir', workdir, '--out', out]) == 0
  stored = checkpoint.read_checkpoint(workdir)
  variables = {'params': stored['params'], 'batch_stats': stored['batch_stats']}
  arrays = safetensors_numpy.load_file(out)
  # Independent of the mapping code: a conv kernel HWIO -> OIHW, the classifier transposed.
  np.testing.assert_array_equal(arrays['conv1.weight'],
                                np.transpose(variables['params']['stem_conv']['kernel'],
                                             (3, 2, 0, 1)))
  np.testing.assert_array_equal(arrays['fc.weight'],
                                variables['params']['classifier']['output']['kernel'].T)
  np.testing.assert_array_equal(arrays['layer2.0.downsample.1.running_var'],
                                variables['batch_stats']['layers_1']['block0']['downsample_bn']
                                ['var'])
  assert arrays['bn1.num_batches_tracked'].ravel().tolist() == [int(stored['step'])] == [8]
  _, metadata = torchvision_io.read(out)
  assert metadata['model'] == 'resnet18_cifar' and metadata['stem'] == 'cifar'
  assert metadata['step'] == '8' and json.loads(metadata['mean']) == list(config.data.mean)
  assert json.loads(metadata['methods']) == [] and metadata['data'] == config.data.name
  loaded = models.load_torchvision('resnet18_cifar', out, **config.model.kwargs)
  jax.tree.map(np.testing.assert_array_equal, loaded, jax.device_get(variables))
  model = build.create_model(config)
  images = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
  np.testing.assert_array_equal(model.apply(loaded, images, train=False),
                                model.apply(variables, images, train=False))


def test_init_from_starts_a_run_from_the_file_and_checks_the_head(trained, tmp_path):
  workdir, config = trained
  out = str(tmp_path / 'net.safetensors')
  export.export(workdir, out)
  config = workdirs.tiny_config()
  config.model.init_from = out
  init_from.check(config)
  model = build.create_model(config)
  tx_state = state_lib.create_train_state(
      model, optim.make_optimizer(config.optim, 0.1), jax.random.key(3),
      jnp.zeros((1, 16, 16, 3)), methods=methods.create_methods({}))
  started = init_from.apply(config, model, tx_state)
  stored = checkpoint.read_checkpoint(workdir)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(started.params), stored['params'])
  # Another class count: one line naming the classifier, then skip_head keeps its init.
  config.data.num_classes = 7
  with pytest.raises(torchvision_io.ExportError) as refused:
    init_from.check(config)
  assert '\n' not in str(refused.value) and 'fc.weight' in str(refused.value)
  assert 'init_from_skip_head' in str(refused.value)
  config.model.init_from_skip_head = True
  init_from.check(config)
  config.model.init_from = str(tmp_path / 'missing.safetensors')
  with pytest.raises(torchvision_io.ExportError, match='no such file'):
    init_from.check(config)


def test_models_without_a_torchvision_layout_and_a_wrong_member_are_one_line(trained, tmp_path,
                                                                             capsys):
  workdir, _ = trained
  out = tmp_path / 'x.safetensors'
  assert export.main(['--workdir', workdir, '--out', str(out), '--member', '1']) == 1
  assert capsys.readouterr().err.startswith('error: --member 1: only a DML run has a network 1')
  assert not out.exists()
  for name in ('vit_tiny_cifar', 'preact_resnet18_cifar'):
    with pytest.raises(torchvision_io.ExportError, match='no torchvision counterpart'):
      torchvision_io.check_exportable(name, models.get_model(name, num_classes=1000))
  with pytest.raises(torchvision_io.ExportError, match='hidden layers'):
    torchvision_io.check_exportable('resnet18', models.get_model('resnet18', num_classes=10, head_hidden=(8,)))


def test_evaluate_scores_an_exported_file_as_the_checkpoint_it_came_from(trained, tmp_path):
  workdir, _ = trained
  out = str(tmp_path / 'net.safetensors')
  export.export(workdir, out)
  from_checkpoint = evaluation.evaluate_workdir(workdir, names=['accuracy'])
  copy = tmp_path / 'copy'  # the run's config without its checkpoints
  copy.mkdir()
  shutil.copy(os.path.join(workdir, 'config.json'), copy / 'config.json')
  from_file = evaluation.evaluate_workdir(str(copy), names=['accuracy'], init_from=out)
  assert from_file.step == 0 and from_checkpoint.step == 8
  assert from_file.metrics == from_checkpoint.metrics and 'test/top1' in from_file.metrics
  # A folder without a run: --experiment records the config file's config, as train.py would.
  fresh = tmp_path / 'fresh'
  experiment = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs',
                            'cifar100_resnet18_ce.py') + ':smoke'
  outcome = evaluation.evaluate_workdir(str(fresh), names=['accuracy'], init_from=out,
                                        experiment=experiment)
  assert json.loads((fresh / 'config.json').read_text())['model']['init_from'] == out
  assert 0 <= outcome.metrics['test/top1'] <= 100
  with pytest.raises(torchvision_io.ExportError, match='no such file'):
    evaluation.evaluate_workdir(str(copy), names=['accuracy'],
                                init_from=str(tmp_path / 'missing.safetensors'))


def test_init_from_on_a_translation_workdir_is_one_line(tmp_path):
  (tmp_path / 'config.json').write_text(json.dumps({'task': 'translation', 'seed': 0}))
  with pytest.raises(evaluation.EvaluationError, match='is a translation run: leave --init_from'):
    evaluation.evaluate_workdir(str(tmp_path), init_from=str(tmp_path / 'net.safetensors'))


def _torch_state_dict_file(path, arrays, dtype):
  """`arrays` (a torchvision state_dict as NumPy) saved by `safetensors.torch.save_file` with
  every floating tensor in `dtype`, as torch users keep checkpoints; -> the torch tensors."""
  tensors = {k: (torch.from_numpy(np.array(v)).to(dtype) if v.dtype.kind == 'f'
                 else torch.from_numpy(np.array(v))) for k, v in arrays.items()}
  safetensors_torch.save_file(tensors, str(path))
  return tensors


@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
def test_float16_and_bfloat16_state_dicts_load_cast_to_float32(trained, tmp_path, dtype):
  """A torchvision state_dict in bf16 / f16 (torchvision's own resnet18, and this run's export
  through config.model.init_from) loads; every value equals torch's own `.float()` of the
  stored tensor, placed by hand (OIHW -> HWIO, [out, in] -> [in, out])."""
  if torchvision is None:
    pytest.skip('needs torch and torchvision (requirements-torch.txt)')
  state_dict = torchvision.models.resnet18(num_classes=10).state_dict()
  path = tmp_path / 'tv.safetensors'
  tensors = _torch_state_dict_file(path, {k: v.numpy() for k, v in state_dict.items()},
                                   getattr(torch, dtype))
  assert tensors['conv1.weight'].dtype == getattr(torch, dtype)
  loaded = models.load_torchvision('resnet18', str(path))
  as_float = {k: v.float().numpy() for k, v in tensors.items()}
  np.testing.assert_array_equal(loaded['params']['stem_conv']['kernel'],
                                np.transpose(as_float['conv1.weight'], (2, 3, 1, 0)))
  np.testing.assert_array_equal(loaded['params']['classifier']['output']['kernel'],
                                as_float['fc.weight'].T)
  np.testing.assert_array_equal(loaded['params']['layers_3']['block1']['bn2']['scale'],
                                as_float['layer4.1.bn2.weight'])
  np.testing.assert_array_equal(loaded['batch_stats']['layers_3']['block1']['bn2']['var'],
                                as_float['layer4.1.bn2.running_var'])
  assert {leaf.dtype for leaf in jax.tree.leaves(loaded)} == {np.dtype(np.float32)}
  # config.model.init_from with this run's export, re-saved by torch in `dtype`.
  workdir, config = trained
  export.export(workdir, str(tmp_path / 'net.safetensors'))
  tensors = _torch_state_dict_file(tmp_path / 'low.safetensors',
                                   safetensors_numpy.load_file(tmp_path / 'net.safetensors'),
                                   getattr(torch, dtype))
  config = workdirs.tiny_config()
  config.model.init_from = str(tmp_path / 'low.safetensors')
  init_from.check(config)
  started = init_from.load(config, build.create_model(config))
  np.testing.assert_array_equal(started['params']['stem_conv']['kernel'],
                                np.transpose(tensors['conv1.weight'].float().numpy(), (2, 3, 1, 0)))
  np.testing.assert_array_equal(started['batch_stats']['stem_bn']['mean'],
                                tensors['bn1.running_mean'].float().numpy())
  assert {leaf.dtype for leaf in jax.tree.leaves(started)} == {np.dtype(np.float32)}


@pytest.fixture(scope='module')
def grayscale(tmp_path_factory):
  """The grayscale digits demo (configs/demo.py:ce,smoke: 8x8 images, one channel) after one
  step and its checkpoint (stopped as SIGTERM would: no evaluation to compile)."""
  from configs import demo  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path_factory.mktemp('digits'))
  config = demo.get_config('ce,smoke')
  config.num_epochs, config.optim.lr_boundaries = 1, ()
  trainer.train_and_evaluate(config, workdir, stop_after_step=1)
  return workdir, config


def test_a_grayscale_runs_export_loads_back_into_its_own_config(grayscale, tmp_path):
  workdir, config = grayscale
  out = str(tmp_path / 'digits.safetensors')
  assert export.main(['--workdir', workdir, '--out', out]) == 0
  assert safetensors_numpy.load_file(out)['conv1.weight'].shape[1] == 1  # one input channel
  config.model.init_from = out
  init_from.check(config)
  model = build.create_model(config)
  loaded = init_from.load(config, model)
  stored = checkpoint.read_checkpoint(workdir)
  variables = {'params': stored['params'], 'batch_stats': stored['batch_stats']}
  images = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
  expected = model.apply(variables, images, train=False)  # the checkpoint's own forward pass
  np.testing.assert_array_equal(model.apply(loaded, images, train=False), expected)
  # load_torchvision takes the channel count from the file's first convolution.
  alone = models.load_torchvision('resnet18_cifar', out, **config.model.kwargs)
  np.testing.assert_array_equal(model.apply(alone, images, train=False), expected)
