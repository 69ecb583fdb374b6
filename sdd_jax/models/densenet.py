"""DenseNet-BC (Huang et al. 2017, "Densely Connected Convolutional Networks") as torchvision.

Dense layer: BN-ReLU-1x1 conv (`bn_size * growth_rate`) - BN-ReLU-3x3 conv
(`growth_rate`), output concatenated to its input. Transition: BN-ReLU-1x1 conv to half
the channels (compression 0.5) - 2x2/2 average pool. Final BN-ReLU before pooling.

Stages (for `stages` / `from_stage`): stage k = dense block k followed by its transition
(k = 1..3); stage 4 = dense block 4 followed by the final BN-ReLU. So stage 1-3 outputs
are the (compressed, pooled) transition outputs, and stage 4 is what gets pooled.

Stems: 'imagenet' = 7x7/2 conv, BN, ReLU, 3x3/2 max-pool (torchvision); 'cifar' = one
3x3 stride-1 conv to `num_init_features` channels, no BN, no pool (as the CIFAR DenseNet
used by the CS-KD code: each dense layer starts with its own BN-ReLU).

Initialisers as torchvision's DenseNet: conv kernels He-normal fan-in (its
`kaiming_normal_` default), BN scale 1, bias 0. BatchNorm as PyTorch (see resnet.py).
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sdd_jax.models import base
from sdd_jax.models import resnet
from sdd_jax.models.resnet import BatchNorm

# torchvision DenseNet: nn.init.kaiming_normal_(weight), i.e. std sqrt(2 / fan_in).
conv_kernel_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')
_conv = functools.partial(resnet.conv, kernel_init=conv_kernel_init)


class DenseLayer(nn.Module):
  """`[B, H, W, C]` -> `[B, H, W, C + growth_rate]` (input, then the new features)."""
  growth_rate: int
  bn_size: int = 4
  dtype: Any = jnp.float32
  bn_group: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = functools.partial(BatchNorm, use_running_average=not train, dtype=self.dtype,
                             group_size=self.bn_group)
    y = nn.relu(norm(name='norm1')(x))
    y = _conv(self.bn_size * self.growth_rate, 1, 1, self.dtype, 'conv1')(y)
    y = nn.relu(norm(name='norm2')(y))
    y = _conv(self.growth_rate, 3, 1, self.dtype, 'conv2')(y)
    return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)


class DenseStage(nn.Module):
  """A dense block, then BN-ReLU and, if `transition`, 1x1 conv to C // 2 + 2x2 avg-pool."""
  num_layers: int
  growth_rate: int
  bn_size: int = 4
  transition: bool = True
  dtype: Any = jnp.float32
  bn_group: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i in range(self.num_layers):
      x = DenseLayer(self.growth_rate, self.bn_size, self.dtype, self.bn_group,
                     name=f'layer{i}')(x, train)
    x = BatchNorm(use_running_average=not train, dtype=self.dtype, group_size=self.bn_group,
                  name='norm')(x)
    x = nn.relu(x)
    if self.transition:
      x = _conv(x.shape[-1] // 2, 1, 1, self.dtype, 'transition_conv')(x)
      x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    return x


class DenseNet(base.StagedNetwork):
  """DenseNet-BC; DenseNet-121 = stage_sizes (6, 12, 24, 16), growth 32, 64 init features.

  Pooled features D = channels after block 4 (1024 for DenseNet-121).

  Attributes (besides `num_classes`, `head_hidden`, `dtype`):
    stage_sizes: dense layers per block.
    growth_rate: channels added by each dense layer.
    num_init_features: channels of the stem conv.
    bn_size: bottleneck width multiplier (1x1 conv has `bn_size * growth_rate` channels).
    stem: 'imagenet' (torchvision) or 'cifar' (3x3 stride-1 conv only).
  """
  stage_sizes: Sequence[int] = (6, 12, 24, 16)
  growth_rate: int = 32
  num_init_features: int = 64
  bn_size: int = 4
  stem: str = 'imagenet'

  @classmethod
  def check_options(cls, options):
    stem = options.get('stem', cls.stem)
    if stem not in ('cifar', 'imagenet'):
      raise ValueError(f"DenseNet stem must be 'cifar' or 'imagenet', got {stem!r}")

  def setup(self):
    self._check_own_options()
    if self.stem == 'imagenet':
      self.stem_conv = _conv(self.num_init_features, 7, 2, self.dtype, None)
      self.stem_bn = BatchNorm(dtype=self.dtype, group_size=self.bn_group)
    else:
      self.stem_conv = _conv(self.num_init_features, 3, 1, self.dtype, None)
    last = len(self.stage_sizes) - 1
    self.layers = [
        DenseStage(num_layers, self.growth_rate, self.bn_size, transition=i != last,
                   dtype=self.dtype, bn_group=self.bn_group)
        for i, num_layers in enumerate(self.stage_sizes)]
    self.classifier = self._make_head()

  def _stem(self, images: jax.Array, train: bool) -> jax.Array:
    x = self.stem_conv(images)
    if self.stem == 'imagenet':
      x = nn.relu(self.stem_bn(x, use_running_average=not train))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    return x
