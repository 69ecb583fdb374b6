"""A StagedNetwork without BatchNorm and with dropout inside, for the method tests: a conv stem
and four conv-bias-ReLU-dropout stages (widths 4, 8, 16, 32; sides halve from the second
stage). Its variables are `{'params'}` only, and in training it needs the `'dropout'` rng, so
it fails loudly wherever a path indexes `batch_stats` or applies the model without `rngs`."""
import flax.linen as nn
import jax.numpy as jnp

from sdd_jax.models import base as models_base


class _Stage(nn.Module):
  features: int
  strides: int
  rate: float

  @nn.compact
  def __call__(self, x, train):
    x = nn.Conv(self.features, (3, 3), (self.strides, self.strides), padding=1,
                dtype=jnp.float32, name='conv')(x)
    return nn.Dropout(self.rate, deterministic=not train)(nn.relu(x))


class BNFreeNet(models_base.StagedNetwork):
  dropout_rate: float = 0.1

  def setup(self):
    self.stem_conv = nn.Conv(4, (3, 3), padding=1, dtype=jnp.float32, name='stem_conv')
    self.layers = [_Stage(4 * 2 ** i, 1 if i == 0 else 2, self.dropout_rate) for i in range(4)]
    self.classifier = self._make_head()

  def _stem(self, images, train):
    return self.stem_conv(images)
