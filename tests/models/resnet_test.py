"""ResNet specifics: torchvision initialisers, block layout, bfloat16 (BatchNorm: batch_norm_test)."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import models

TINY = models.tiny_kwargs('resnet18_cifar')  # width 4, one block per stage
# rbg keys: the model's initialisers compile in ~1.5 s on CPU instead of ~15 s with the
# default (partitionable) threefry; the distributions do not depend on the key type.
INIT_KEY = functools.partial(jax.random.key, impl='rbg')


def test_initialisers_follow_torchvision():
  model = models.get_model('resnet18_cifar', num_classes=10, width=32, stage_sizes=(1, 1, 1, 1))
  variables = jax.jit(functools.partial(model.init, train=False))(
      INIT_KEY(0), jnp.zeros((1, 8, 8, 3)))
  params = variables['params']

  # Conv: He normal, fan-out (kaiming_normal_(mode='fan_out')), no bias.
  kernel = np.asarray(params['layers_3']['block0']['conv2']['kernel'])
  assert kernel.shape == (3, 3, 256, 256)
  assert set(params['layers_3']['block0']['conv2']) == {'kernel'}
  np.testing.assert_allclose(kernel.std(), np.sqrt(2 / (3 * 3 * 256)), rtol=0.02)
  assert abs(kernel.mean()) < 0.01 * kernel.std()

  # BatchNorm: scale 1, bias 0, running mean 0, running var 1 (zero_init_residual=False).
  for path, leaf in jax.tree_util.tree_leaves_with_path(
      {'params': params, 'batch_stats': variables['batch_stats']}):
    keys = [p.key for p in path]
    if keys[-1] in ('scale', 'var'):
      np.testing.assert_array_equal(leaf, 1.0, err_msg=str(keys))
    elif keys[-1] == 'bias' or keys[-1] == 'mean':
      if 'classifier' not in keys:
        np.testing.assert_array_equal(leaf, 0.0, err_msg=str(keys))

  # Linear: PyTorch default, weight and bias uniform in +-1/sqrt(fan_in).
  bound = 1 / np.sqrt(256)
  dense = params['classifier']['output']
  assert dense['kernel'].shape == (256, 10)
  for leaf in (dense['kernel'], dense['bias']):
    assert np.all(np.abs(leaf) <= bound)
  assert np.abs(dense['kernel']).max() > 0.95 * bound
  np.testing.assert_allclose(np.asarray(dense['kernel']).std(), bound / np.sqrt(3), rtol=0.05)
  assert np.all(dense['bias'] != 0)


def test_bottleneck_strides_on_the_3x3_conv(random_variables):
  """torchvision v1.5: conv1 (1x1) keeps the resolution, conv2 (3x3) halves it."""
  model = models.get_model('resnet50_cifar', num_classes=3, **TINY)
  images = jnp.zeros((1, 32, 32, 3))
  variables = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), images)
  _, state = jax.eval_shape(
      lambda v: model.apply(v, images, train=False, capture_intermediates=True), variables)
  block = state['intermediates']['layers_1']['block0']
  assert block['conv1']['__call__'][0].shape == (1, 32, 32, 8)
  assert block['conv2']['__call__'][0].shape == (1, 16, 16, 8)
  assert block['conv3']['__call__'][0].shape == (1, 16, 16, 32)
  assert block['downsample_conv']['__call__'][0].shape == (1, 16, 16, 32)
  assert variables['params']['layers_1']['block0']['conv2']['kernel'].shape == (3, 3, 8, 8)


def test_preact_layout():
  """No BN in the stem; final BN at the end of stage 4; shortcuts are bare 1x1 convs."""
  model = models.get_model('preact_resnet18_cifar', num_classes=3, **TINY)
  params = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0),
      jnp.zeros((1, 32, 32, 3)))['params']
  assert 'stem_bn' not in params
  assert 'final_bn' in params['layers_3']
  assert all('final_bn' not in params[f'layers_{i}'] for i in range(3))
  assert set(params['layers_1']['block0']) == {'bn1', 'conv1', 'bn2', 'conv2', 'shortcut_conv'}
  assert set(params['layers_0']['block0']) == {'bn1', 'conv1', 'bn2', 'conv2'}


@pytest.mark.parametrize('name', ['resnet18_cifar', 'preact_resnet18_cifar', 'resnet50'])
def test_stage_outputs_are_post_relu(name, random_variables):
  model = models.get_model(name, num_classes=3, **TINY)
  images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  variables = random_variables(model, images)
  stages = jax.jit(lambda v, x: model.apply(v, x, train=False, method=model.stages))(
      variables, images)
  # Post-activation blocks end in ReLU; pre-activation only stage 4 (final BN-ReLU).
  last_only = name.startswith('preact')
  for k, stage in enumerate(stages, start=1):
    assert bool(jnp.all(stage >= 0)) == (k == 4 or not last_only), k


def test_bfloat16_computes_in_bf16_keeps_float32_params_and_outputs(random_variables):
  model = models.get_model('resnet18_cifar', num_classes=5, dtype=jnp.bfloat16, **TINY)
  images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  variables = random_variables(model, images)
  chex.assert_trees_all_equal_dtypes(
      variables, jax.tree.map(lambda x: jnp.zeros((), jnp.float32), variables))

  @jax.jit
  def run(variables, images):
    logits, state = model.apply(variables, images, train=True, mutable=['batch_stats'])
    stages = model.apply(variables, images, train=False, method=model.stages)
    features = model.apply(variables, images, train=False, method=model.features)
    return logits, state, stages, features

  logits, state, stages, features = run(variables, images)
  assert logits.dtype == jnp.float32 and features.dtype == jnp.float32
  assert all(s.dtype == jnp.bfloat16 for s in stages)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state))
  chex.assert_tree_all_finite((logits, features))
  # Close to the float32 model with the same variables.
  model32 = models.get_model('resnet18_cifar', num_classes=5, **TINY)
  features32 = jax.jit(lambda v, x: model32.apply(v, x, train=False, method=model32.features))(
      variables, images)
  np.testing.assert_allclose(features, features32, rtol=0.1, atol=0.05)


def test_unknown_stem_is_rejected():
  model = models.get_model('resnet18_cifar', num_classes=3, stem='cifar10', **TINY)
  with pytest.raises(ValueError, match="stem must be 'cifar' or 'imagenet'"):
    jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                   jnp.zeros((1, 32, 32, 3)))
