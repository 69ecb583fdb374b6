"""BatchNorm in every convolutional family follows PyTorch: the running statistics move with
momentum 0.1, against the batch statistics of a NumPy convolution."""
import functools

import jax
import numpy as np
import pytest

from sdd_jax import models


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
