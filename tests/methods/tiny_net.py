"""The smallest StagedNetwork, for the method tests: a conv stem and four conv-BN-ReLU stages
(widths 4, 8, 16, 32; sides halve from the second stage). XLA compiles its train step about twice
as fast as a width-4 ResNet's, and the methods rely only on the staged-network contract."""
import flax.linen as nn
import jax.numpy as jnp

from sdd_jax.models import heads
from sdd_jax.models import resnet


class _Stage(nn.Module):
  features: int
  strides: int

  @nn.compact
  def __call__(self, x, train):
    x = resnet.conv(self.features, 3, self.strides, jnp.float32, 'conv')(x)
    return nn.relu(resnet.BatchNorm(use_running_average=not train, name='bn')(x))


class TinyNet(heads.StagedNetwork):

  def setup(self):
    self.stem_conv = resnet.conv(4, 3, 1, jnp.float32, 'stem_conv')
    self.layers = [_Stage(4 * 2 ** i, 1 if i == 0 else 2) for i in range(4)]
    self.classifier = self._make_head()

  def _stem(self, images, train):
    return self.stem_conv(images)
