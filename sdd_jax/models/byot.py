"""BYOT's auxiliary classifiers (Zhang et al. 2019, "Be Your Own Teacher"): a training-only
model option, not part of the evaluated network.

One `AuxiliaryHead` after each of stages 1..3: 1x1 conv to `bottleneck` channels + BN + ReLU,
k x k conv with stride k + BN + ReLU (k = the stage's side over the last stage's side: 8, 4, 2
for a CIFAR ResNet, so every head reaches the last stage's size), 1x1 conv to D channels + BN +
ReLU (D = the pooled feature width of the network, 512 for ResNet-18), global average pooling,
linear classifier. `bottleneck` defaults to D // 4 (128 for ResNet-18, as the paper). Layers
as the ResNets: He-normal fan-out convs without bias, PyTorch BatchNorm, PyTorch-style linear.

The method (`methods/byot.py`) keeps these parameters under their own top-level key of the
train state's `params` / `batch_stats`, which the plain network never reads.
"""
from typing import Any, List, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from sdd_jax import models as models_lib
from sdd_jax.models import heads
from sdd_jax.models import resnet


class AuxiliaryHead(nn.Module):
  """Stage-k feature map `[batch, H, W, C]` -> (features `[batch, D]`, logits `[batch, K]`),
  both float32."""
  num_classes: int
  features: int
  bottleneck: int
  stride: int
  dtype: Any = jnp.float32
  bn_group: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Tuple[jax.Array, jax.Array]:
    def norm(y, name):
      return nn.relu(resnet.BatchNorm(use_running_average=not train, dtype=self.dtype,
                                      group_size=self.bn_group, name=name)(y))

    x = norm(resnet.conv(self.bottleneck, 1, 1, self.dtype, 'reduce_conv')(x), 'reduce_bn')
    x = nn.Conv(self.bottleneck, (self.stride, self.stride), (self.stride, self.stride),
                padding='VALID', use_bias=False, kernel_init=resnet.conv_kernel_init,
                dtype=self.dtype, param_dtype=jnp.float32, name='pool_conv')(x)
    x = norm(x, 'pool_bn')
    x = norm(resnet.conv(self.features, 1, 1, self.dtype, 'expand_conv')(x), 'expand_bn')
    features = heads.global_average_pool(x)
    return features, heads.Head(self.num_classes, (), self.dtype, name='classifier')(features)


class AuxiliaryHeads(nn.Module):
  """One `AuxiliaryHead` per input feature map (`strides[i]` for map i)."""
  num_classes: int
  features: int
  bottleneck: int
  strides: Sequence[int]
  dtype: Any = jnp.float32
  bn_group: int = 0

  @nn.compact
  def __call__(self, stage_outputs: Sequence[jax.Array],
               train: bool) -> List[Tuple[jax.Array, jax.Array]]:
    return [AuxiliaryHead(self.num_classes, self.features, self.bottleneck, stride, self.dtype,
                          self.bn_group, name=f'head{i + 1}')(x, train)
            for i, (x, stride) in enumerate(zip(stage_outputs, self.strides))]


def check_model(model_name: str) -> None:
  """Raises ValueError (one line) unless model `model_name`'s stage outputs are feature maps
  `[batch, H, W, C]`, which the convolutional auxiliary heads need (not the ViT's tokens)."""
  if (model_name in models_lib.MODELS
      and models_lib.model_class(model_name).stage_outputs != 'feature_maps'):
    raise ValueError(f"its auxiliary heads are convolutions on stage feature maps, and "
                     f"{model_name}'s stages are token sequences; use a CNN (e.g. "
                     f"resnet18_cifar) or drop methods.byot")


def create_auxiliary_heads(model, stage_outputs: Sequence[jax.Array], feature_width: int,
                           bottleneck: int = 0) -> AuxiliaryHeads:
  """The heads for the first len - 1 stage outputs of `model`, each pooled down to the last
  stage's side. Raises ValueError when a stage's side is not a multiple of the last one's."""
  last = stage_outputs[-1].shape[1]
  strides = []
  for k, x in enumerate(stage_outputs[:-1], start=1):
    if x.shape[1] % last or x.shape[2] % stage_outputs[-1].shape[2]:
      raise ValueError(f'byot: stage {k} output is {x.shape[1]}x{x.shape[2]}, not a multiple of '
                       f'the last stage\'s {last}x{stage_outputs[-1].shape[2]}; use an image '
                       'size that halves evenly (e.g. 32 or 224)')
    strides.append(x.shape[1] // last)
  return AuxiliaryHeads(model.num_classes, feature_width, bottleneck or max(1, feature_width // 4),
                        tuple(strides), model.dtype, model.bn_group)
