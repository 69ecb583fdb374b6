"""ResNets as torchvision (ImageNet stem) and as the CIFAR papers (3x3 stem, no max-pool).

- `BasicBlock`, `Bottleneck`: He et al. 2016, "Deep Residual Learning"; Bottleneck is
  torchvision's v1.5 (stride on the 3x3 conv). Shortcut = 1x1 conv (stride) + BN when
  the shape changes.
- `PreActBlock`: He et al. 2016, "Identity Mappings in Deep Residual Networks", as in
  the CS-KD / PS-KD code: BN-ReLU-conv, shortcut conv on the pre-activated input, a 3x3
  stem conv without BN and a final BN-ReLU before pooling (here the end of stage 4, so
  that `from_stage` stays consistent).

BatchNorm as PyTorch: momentum 0.1 (flax momentum 0.9), epsilon 1e-5, statistics of the whole
batch or of blocks of `bn_group` rows (`BatchNorm.group_size`; no `axis_name`), and the running
variance averages the *unbiased* batch variance (n / (n - 1) times the biased one that
normalises, n = batch x H x W), as `nn.BatchNorm2d`;
flax's own keeps the biased one, which on small maps (8x8 digits: n = 64 at stage 4) made
evaluation ~1 point more confident than PyTorch's (benchmarks/torch_reference). Conv kernels
He-normal fan-out without bias (torchvision).
Padding is explicit and symmetric as in PyTorch (flax 'SAME' differs at stride 2).
"""
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sdd_jax.models import base

class BatchNorm(nn.BatchNorm):
  """PyTorch BatchNorm2d: running = 0.9 * running + 0.1 * batch (momentum 0.1), eps 1e-5, and
  the running variance built from the unbiased batch variance. Same variables as flax's.

  `group_size` (config.model.bn_group; ghost or virtual-batch BN, Hoffer et al. 2017, "Train
  longer, generalize better"): 0, or the whole batch, normalises with the statistics of all the
  rows the layer sees (flax's own code path, so bitwise today's). G > 0 splits the rows into
  consecutive blocks of G, `[B, ...] -> [B / G, G, ...]`, and normalises each block with its own
  mean and biased variance (E[x^2] - E[x]^2, as flax). The running statistics move once per
  step towards the mean over blocks of each block's mean, and of each block's unbiased variance
  (n / (n - 1) times the biased one, n = G x H x W), as Keras' `virtual_batch_size` averages
  the ghost batches' statistics. Evaluation (running averages) does not depend on G.
  """
  momentum: float = 0.9
  epsilon: float = 1e-5
  param_dtype: Any = jnp.float32
  group_size: int = 0

  @nn.compact
  def __call__(self, x, use_running_average=None, *, mask=None):
    use_running_average = nn.merge_param('use_running_average', self.use_running_average,
                                         use_running_average)
    update = not use_running_average and not self.is_initializing()
    if update and mask is not None:
      raise NotImplementedError('BatchNorm: masked statistics are not supported')
    if update and self.group_size and self.group_size != x.shape[0]:
      return self._ghost(x)
    old = self.get_variable('batch_stats', 'var') if update else None
    y = super().__call__(x, None if self.use_running_average is not None else use_running_average,
                         mask=mask)
    if update:  # flax stored momentum * old + (1 - momentum) * biased; make it unbiased
      n = x.size // x.shape[-1]
      new = self.get_variable('batch_stats', 'var')
      self.put_variable('batch_stats', 'var',
                        self.momentum * old + (new - self.momentum * old) * n / (n - 1))
    return y

  def _ghost(self, x):
    """Training with blocks of `group_size` rows: each normalised with its own statistics."""
    rows, group = x.shape[0], self.group_size
    if rows % group:
      raise ValueError(f'BatchNorm: group_size {group} does not divide the {rows} rows of the '
                       'batch; use a divisor of the batch (config.model.bn_group)')
    features = x.shape[-1]
    blocks = x.reshape((rows // group, group) + x.shape[1:])
    axes = tuple(range(1, blocks.ndim - 1))  # within a block: its rows and the spatial axes
    x32 = blocks.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = x32.mean(axes, keepdims=True)
    var = jnp.maximum(0.0, jnp.square(x32).mean(axes, keepdims=True) - jnp.square(mean))
    scale = self.param('scale', self.scale_init, (features,), self.param_dtype)
    bias = self.param('bias', self.bias_init, (features,), self.param_dtype)
    y = (x32 - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
    n = x.size // rows * group // features
    ra_mean = self.variable('batch_stats', 'mean')
    ra_var = self.variable('batch_stats', 'var')
    ra_mean.value = (self.momentum * ra_mean.value
                     + (1 - self.momentum) * mean.reshape(-1, features).mean(0))
    ra_var.value = (self.momentum * ra_var.value
                    + (1 - self.momentum) * var.reshape(-1, features).mean(0) * n / (n - 1))
    return y.reshape(x.shape).astype(self.dtype or jnp.result_type(x, scale))


# torchvision: kaiming_normal_(mode='fan_out', nonlinearity='relu'), std sqrt(2 / fan_out).
conv_kernel_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def conv(features: int, kernel: int, strides: int, dtype: Any, name: str | None,
         kernel_init=conv_kernel_init) -> nn.Conv:
  """Bias-free square conv with PyTorch's symmetric padding `kernel // 2`."""
  pad = kernel // 2
  return nn.Conv(
      features, (kernel, kernel), (strides, strides),
      padding=((pad, pad), (pad, pad)),
      use_bias=False,
      kernel_init=kernel_init,
      dtype=dtype,
      param_dtype=jnp.float32,
      name=name)


class BasicBlock(nn.Module):
  """3x3 conv-BN-ReLU, 3x3 conv-BN, + shortcut, ReLU. Output `features` channels."""
  features: int
  strides: int = 1
  dtype: Any = jnp.float32
  bn_group: int = 0
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = functools.partial(BatchNorm, use_running_average=not train, dtype=self.dtype,
                             group_size=self.bn_group)
    y = conv(self.features, 3, self.strides, self.dtype, 'conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.features, 3, 1, self.dtype, 'conv2')(y)
    y = norm(name='bn2')(y)
    return nn.relu(y + _shortcut(x, self.features, self.strides, self.dtype, norm))


def _shortcut(x: jax.Array, features: int, strides: int, dtype, norm) -> jax.Array:
  """`x`, or its 1x1 conv (stride) + BN projection (`downsample_*`, as torchvision) where the
  block changes the resolution or the width. Call from a block's compact `__call__`."""
  if strides == 1 and x.shape[-1] == features:
    return x
  return norm(name='downsample_bn')(conv(features, 1, strides, dtype, 'downsample_conv')(x))


class Bottleneck(nn.Module):
  """1x1 conv, 3x3 conv (stride), 1x1 conv to `4 * features`, each with BN (v1.5)."""
  features: int
  strides: int = 1
  dtype: Any = jnp.float32
  bn_group: int = 0
  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = functools.partial(BatchNorm, use_running_average=not train, dtype=self.dtype,
                             group_size=self.bn_group)
    out_features = self.features * self.expansion
    y = conv(self.features, 1, 1, self.dtype, 'conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.features, 3, self.strides, self.dtype, 'conv2')(y)
    y = nn.relu(norm(name='bn2')(y))
    y = conv(out_features, 1, 1, self.dtype, 'conv3')(y)
    y = norm(name='bn3')(y)
    return nn.relu(y + _shortcut(x, out_features, self.strides, self.dtype, norm))


class PreActBlock(nn.Module):
  """BN-ReLU-3x3 conv (stride), BN-ReLU-3x3 conv, + shortcut; no activation after."""
  features: int
  strides: int = 1
  dtype: Any = jnp.float32
  bn_group: int = 0
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = functools.partial(BatchNorm, use_running_average=not train, dtype=self.dtype,
                             group_size=self.bn_group)
    y = nn.relu(norm(name='bn1')(x))
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = conv(self.features, 1, self.strides, self.dtype, 'shortcut_conv')(y)
    y = conv(self.features, 3, self.strides, self.dtype, 'conv1')(y)
    y = nn.relu(norm(name='bn2')(y))
    y = conv(self.features, 3, 1, self.dtype, 'conv2')(y)
    return y + shortcut


class ResNetStage(nn.Module):
  """`num_blocks` blocks, the first with `strides`; optionally a final BN-ReLU (pre-act)."""
  block_cls: Any
  num_blocks: int
  features: int
  strides: int
  final_norm: bool = False
  dtype: Any = jnp.float32
  bn_group: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """`[batch, H, W, C]` -> `[batch, H / strides, W / strides, features * expansion]`."""
    for i in range(self.num_blocks):
      strides = self.strides if i == 0 else 1
      x = self.block_cls(self.features, strides, self.dtype, self.bn_group,
                         name=f'block{i}')(x, train)
    if self.final_norm:
      x = BatchNorm(use_running_average=not train, dtype=self.dtype, group_size=self.bn_group,
                    name='final_bn')(x)
      x = nn.relu(x)
    return x


class ResNet(base.StagedNetwork):
  """ResNet with a CIFAR stem (3x3/1 conv) or an ImageNet stem (7x7/2 conv + max-pool).

  Stage k (k = 1..4) has `stage_sizes[k-1]` blocks of width `width * 2**(k-1)`
  (times 4 output channels for `Bottleneck`); stages 2-4 halve the resolution.
  Pooled features: D = 8 * width * expansion (512 for ResNet-18/34, 2048 for 50+).

  Attributes (besides `num_classes`, `head_hidden`, `dtype`):
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
    block_cls: `BasicBlock`, `Bottleneck` or `PreActBlock`. With `PreActBlock` the stem
      has no BN/ReLU and stage 4 ends with BN-ReLU.
    width: channels of the stem and of stage 1 (64 in the papers).
    stem: 'cifar' (3x3 stride-1 conv, no pool) or 'imagenet' (torchvision).
  """
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  block_cls: Any = BasicBlock
  width: int = 64
  stem: str = 'cifar'

  @classmethod
  def check_options(cls, options):
    stem = options.get('stem', cls.stem)
    if stem not in ('cifar', 'imagenet'):
      raise ValueError(f"ResNet stem must be 'cifar' or 'imagenet', got {stem!r}")

  def setup(self):
    self._check_own_options()
    preact = self.block_cls is PreActBlock
    kernel, strides = (3, 1) if self.stem == 'cifar' else (7, 2)
    self.stem_conv = conv(self.width, kernel, strides, self.dtype, None)
    self.stem_bn = None if preact else BatchNorm(dtype=self.dtype, group_size=self.bn_group)
    last = len(self.stage_sizes) - 1
    self.layers = [
        ResNetStage(
            self.block_cls, num_blocks, self.width * 2**i, strides=1 if i == 0 else 2,
            final_norm=preact and i == last, dtype=self.dtype, bn_group=self.bn_group)
        for i, num_blocks in enumerate(self.stage_sizes)]
    self.classifier = self._make_head()

  def _stem(self, images: jax.Array, train: bool) -> jax.Array:
    x = self.stem_conv(images)
    if self.stem_bn is not None:
      x = nn.relu(self.stem_bn(x, use_running_average=not train))
    if self.stem == 'imagenet':
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    return x
