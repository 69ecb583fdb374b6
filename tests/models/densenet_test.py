"""DenseNet specifics: layout of stages and transitions, initialisers, bfloat16 (BatchNorm:
batch_norm_test)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax import models

TINY = models.tiny_kwargs('densenet121_cifar')  # growth 4, 8 stem channels, 1 layer per block
INIT_KEY = functools.partial(jax.random.key, impl='rbg')  # fast CPU compile; see resnet_test


def _init_shapes(model, size):
  return jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0),
      jnp.zeros((1, size, size, 3)))


def test_densenet121_layout():
  """Blocks 6-12-24-16, growth 32, bottleneck 128, compression 0.5, 1024 features."""
  params = _init_shapes(models.get_model('densenet121', num_classes=10), 32)['params']
  assert [len([k for k in params[f'layers_{i}'] if k.startswith('layer')]) for i in range(4)] == [
      6, 12, 24, 16]
  first = params['layers_0']['layer0']
  assert first['conv1']['kernel'].shape == (1, 1, 64, 128)
  assert first['conv2']['kernel'].shape == (3, 3, 128, 32)
  # Transitions: 64 + 6 * 32 = 256 -> 128; 128 + 12 * 32 = 512 -> 256; 256 + 768 -> 512.
  assert params['layers_0']['transition_conv']['kernel'].shape == (1, 1, 256, 128)
  assert params['layers_1']['transition_conv']['kernel'].shape == (1, 1, 512, 256)
  assert params['layers_2']['transition_conv']['kernel'].shape == (1, 1, 1024, 512)
  assert 'transition_conv' not in params['layers_3']
  assert params['layers_3']['norm']['scale'].shape == (1024,)  # torchvision's norm5
  assert params['stem_conv']['kernel'].shape == (7, 7, 3, 64)
  assert 'stem_bn' in params


def test_cifar_stem_is_one_3x3_conv():
  params = _init_shapes(models.get_model('densenet121_cifar', num_classes=10), 32)['params']
  assert params['stem_conv']['kernel'].shape == (3, 3, 3, 64)
  assert 'stem_bn' not in params


def test_conv_init_is_he_normal_fan_in():
  """torchvision's DenseNet uses kaiming_normal_ with its default mode='fan_in'."""
  model = models.get_model(
      'densenet121_cifar', num_classes=10, stage_sizes=(1, 1, 1, 1))
  variables = jax.jit(functools.partial(model.init, train=False))(
      INIT_KEY(0), jnp.zeros((1, 8, 8, 3)))
  kernel = np.asarray(variables['params']['layers_0']['layer0']['conv2']['kernel'])
  assert kernel.shape == (3, 3, 128, 32)  # fan_in 1152, fan_out 288: clearly different
  np.testing.assert_allclose(kernel.std(), np.sqrt(2 / (3 * 3 * 128)), rtol=0.03)


def test_stage_4_ends_with_relu_and_bfloat16_outputs_float32(random_variables):
  model = models.get_model('densenet121_cifar', num_classes=5, dtype=jnp.bfloat16, **TINY)
  images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  variables = random_variables(model, images)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))

  @jax.jit
  def run(variables, images):
    logits, state = model.apply(variables, images, train=True, mutable=['batch_stats'])
    stages = model.apply(variables, images, train=False, method=model.stages)
    return logits, state, stages

  logits, state, stages = run(variables, images)
  assert logits.dtype == jnp.float32
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state))
  assert all(s.dtype == jnp.bfloat16 for s in stages)
  assert bool(jnp.all(stages[3] >= 0))  # final BN-ReLU
  assert bool(jnp.any(stages[0] < 0))  # transition: conv after the ReLU, then avg-pool
