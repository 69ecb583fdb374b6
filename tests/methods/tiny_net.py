"""The smallest StagedNetwork, for the method tests: a conv stem and four conv-BN-ReLU stages
(widths 4, 8, 16, 32; sides halve from the second stage). The methods rely only on the
staged-network contract, so this is a fake network (as scenic's fixed-logit model), not the tiny
variant of a registered model (those live beside each model: `models.tiny_kwargs`, used by
`:smoke` and tests/models). Measured on 2 CPU cores with a cold compilation cache: running the
5 test files that use it on `resnet18_cifar`'s tiny variant instead costs ~58 s more CPU
(~+40%: 12 convolutions and 12 BatchNorms against 5 and 4), ~30 s of CI wall time."""
import flax.linen as nn
import jax.numpy as jnp

from sdd_jax import models
from sdd_jax.models import base
from sdd_jax.models import resnet


class _Stage(nn.Module):
  features: int
  strides: int

  @nn.compact
  def __call__(self, x, train):
    x = resnet.conv(self.features, 3, self.strides, jnp.float32, 'conv')(x)
    return nn.relu(resnet.BatchNorm(use_running_average=not train, name='bn')(x))


class TinyNet(base.StagedNetwork):

  def setup(self):
    self.stem_conv = resnet.conv(4, 3, 1, jnp.float32, 'stem_conv')
    self.layers = [_Stage(4 * 2 ** i, 1 if i == 0 else 2) for i in range(4)]
    self.classifier = self._make_head()

  def _stem(self, images, train):
    return self.stem_conv(images)


def tiny_vit(num_classes: int, dropout: float = 0.1, drop_path: float = 0.1, **kwargs):
  """The registry's tiny ViT (no BatchNorm; 4 blocks, D=16) with dropout and stochastic depth
  on, so training needs `rngs={'dropout': key}`: the network for method tests of models
  without BatchNorm and of the dropout key (`dropout=drop_path=0` needs no key)."""
  options = {**models.tiny_kwargs('vit_tiny_cifar'), 'dropout': dropout, 'drop_path': drop_path}
  return models.get_model('vit_tiny_cifar', num_classes=num_classes, **{**options, **kwargs})
