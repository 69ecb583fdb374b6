"""BatchNorm in every convolutional family follows PyTorch: the running statistics move with
momentum 0.1, against the batch statistics of a NumPy convolution."""
import functools

import jax
import numpy as np
import pytest

from sdd_jax import models
from sdd_jax.models import byot
from sdd_jax.models import resnet


@pytest.mark.parametrize('name, kernel_size, strides, bn_path', [
    ('resnet18_cifar', 3, 1, ('stem_bn',)),
    ('resnet18', 7, 2, ('stem_bn',)),
    # Pre-activation: the stem has no BN; the first BN normalises the stem conv output.
    ('preact_resnet18_cifar', 3, 1, ('layers_0', 'block0', 'bn1')),
    # CIFAR stem has no BN: the first dense layer's norm1 sees the stem conv output.
    ('densenet121_cifar', 3, 1, ('layers_0', 'layer0', 'norm1')),
    ('densenet121', 7, 2, ('stem_bn',)),
])
def test_batch_norm_running_stats_follow_pytorch_momentum(
    name, kernel_size, strides, bn_path, random_variables, numpy_conv):
  """running = 0.9 * running + 0.1 * batch statistic, the batch statistic from NumPy."""
  model = models.get_model(name, num_classes=3, **models.tiny_kwargs(name))
  images = np.random.default_rng(0).normal(1.0, 2.0, (4, 16, 16, 3)).astype(np.float32)
  variables = random_variables(model, images)
  _, state = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats']))(
      variables, images)

  # The BN input is the stem conv output, with PyTorch's symmetric padding k // 2.
  conv_out = numpy_conv(
      images, variables['params']['stem_conv']['kernel'], strides, kernel_size // 2)
  old = functools.reduce(lambda tree, key: tree[key], bn_path, variables['batch_stats'])
  new = functools.reduce(lambda tree, key: tree[key], bn_path, state['batch_stats'])
  np.testing.assert_allclose(
      new['mean'], 0.9 * old['mean'] + 0.1 * conv_out.mean(axis=(0, 1, 2)),
      rtol=1e-4, atol=1e-5)
  # As PyTorch: the running variance averages the unbiased batch variance (ddof 1).
  np.testing.assert_allclose(
      new['var'], 0.9 * old['var'] + 0.1 * conv_out.var(axis=(0, 1, 2), ddof=1), rtol=1e-4,
      atol=1e-5)


def test_a_group_normalises_each_block_of_rows_with_its_own_statistics():
  """Ghost BN (`group_size` 2 over 8 rows), against NumPy: each block of 2 consecutive rows is
  normalised with its own mean and biased variance; the running mean moves towards the mean of
  the blocks' means, the running variance towards the mean of their unbiased variances."""
  images = np.random.default_rng(0).normal(1.0, 2.0, (8, 4, 4, 3)).astype(np.float32)
  layer = resnet.BatchNorm(group_size=2)
  variables = {'params': {'scale': np.array([1.0, 2.0, 0.5], np.float32),
                          'bias': np.array([0.0, 0.1, -0.2], np.float32)},
               'batch_stats': {'mean': np.array([0.1, 0.2, 0.3], np.float32),
                               'var': np.array([1.0, 1.5, 0.5], np.float32)}}
  y, state = jax.jit(lambda v, x: layer.apply(v, x, use_running_average=False,
                                              mutable=['batch_stats']))(variables, images)
  blocks = images.astype(np.float64).reshape(4, 2, 4, 4, 3)
  mean = blocks.mean(axis=(1, 2, 3), keepdims=True)
  var = blocks.var(axis=(1, 2, 3), keepdims=True)
  expected = ((blocks - mean) / np.sqrt(var + 1e-5) * variables['params']['scale']
              + variables['params']['bias']).reshape(images.shape)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
  old = variables['batch_stats']
  np.testing.assert_allclose(state['batch_stats']['mean'],
                             0.9 * old['mean'] + 0.1 * mean.reshape(4, 3).mean(0), rtol=1e-5)
  unbiased = blocks.var(axis=(1, 2, 3), ddof=1).mean(0)  # n = 2 x 4 x 4 per block
  np.testing.assert_allclose(state['batch_stats']['var'], 0.9 * old['var'] + 0.1 * unbiased,
                             rtol=1e-5)


def test_a_group_that_does_not_divide_the_rows_is_refused():
  layer = resnet.BatchNorm(group_size=3)
  images = np.zeros((8, 2, 2, 1), np.float32)
  variables = layer.init(jax.random.key(0), images, use_running_average=True)
  with pytest.raises(ValueError, match='group_size 3 does not divide the 8 rows'):
    layer.apply(variables, images, use_running_average=False, mutable=['batch_stats'])


@pytest.mark.parametrize('name', ['resnet18_cifar', 'resnet50_cifar', 'preact_resnet18_cifar',
                                  'densenet121_cifar', 'byot_heads'])
def test_every_batch_norm_of_a_model_honours_the_group(name, random_variables):
  """A model with `bn_group=2` on 4 rows in training = the same model (whole-batch BN) run on
  rows 0-1 and on rows 2-3 apart: the same outputs, and running statistics that are the mean
  of the two runs' (each moves 0.1 of the way to its block's statistic). Covers every BN layer
  (stems, blocks, shortcuts, pre-activation's final BN, DenseNet transitions, BYOT's heads)."""
  images = np.random.default_rng(1).normal(0.0, 1.0, (4, 16, 16, 3)).astype(np.float32)
  if name == 'byot_heads':
    backbone = models.get_model('resnet18_cifar', num_classes=3,
                                **models.tiny_kwargs('resnet18_cifar'))
    stage_outputs = backbone.apply(random_variables(backbone, images), images, False,
                                   method=backbone.stages)
    make = lambda group: byot.create_auxiliary_heads(backbone.clone(bn_group=group),
                                                     stage_outputs, 8)
    inputs = stage_outputs[:-1]
    shapes = jax.eval_shape(functools.partial(make(0).init, train=False), jax.random.key(0),
                            inputs)
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: rng.uniform(0.5, 1.5, s.shape).astype(s.dtype), shapes)
  else:
    make = lambda group: models.get_model(name, num_classes=3, bn_group=group,
                                          **models.tiny_kwargs(name))
    inputs = images
    variables = random_variables(make(0), images)
  apply = lambda v, group, x: make(group).apply(v, x, train=True, mutable=['batch_stats'])
  # One compilation for the three forwards (op by op they cost ~10 s per model on CPU).
  ((grouped, grouped_state), (first, first_state), (second, second_state)) = jax.jit(
      lambda v, x: (apply(v, 2, x), apply(v, 0, jax.tree.map(lambda a: a[:2], x)),
                    apply(v, 0, jax.tree.map(lambda a: a[2:], x))))(variables, inputs)
  jax.tree.map(lambda g, a, b: np.testing.assert_allclose(g, np.concatenate([a, b]),
                                                          rtol=1e-4, atol=1e-5),
               grouped, first, second)
  jax.tree.map(lambda g, a, b: np.testing.assert_allclose(g, (a + b) / 2, rtol=1e-4, atol=1e-6),
               grouped_state, first_state, second_state)
