"""The base class every model inherits: `StagedNetwork`, a stem, four stages and a head.

Every model in `sdd_jax.models` is a `StagedNetwork`:

  __call__(images, train)    -> logits   [batch, classes]             (float32)
  features(images, train)    -> features [batch, D]                   (float32)
  head(features)             -> logits   [batch, classes]             (float32)
  stages(images, train)      -> 4 stage outputs (compute dtype): feature maps
                                [batch, H, W, C] for the CNNs, token sequences
                                [batch, tokens, D] for the ViT (`stage_outputs` says which)
  from_stage(k, x, train)    -> features [batch, D], x = stage-k output, k in 1..4

with `__call__(x) == head(features(x))` and
`features(x) == from_stage(k, stages(x)[k - 1])` for every k.
"""
import dataclasses
from typing import Any, ClassVar, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sdd_jax.models import heads


class StagedNetwork(nn.Module):
  """Base class: a stem, four stages (`self.layers`) and a `Head` (`self.classifier`).

  Subclasses define `setup()` (creating `layers`, a list of 4 modules called as
  `layer(x, train)`, and `classifier`) and `_stem(images, train)`; `_pool(x)` turns the last
  stage's output into the features (default: global average pooling of a feature map);
  `check_options` refuses constructor arguments that cannot work, in one line.

  Attributes:
    num_classes: number of output logits.
    head_hidden: hidden widths of the head (see `heads.Head`); `(512,)` for Table 13.
    dtype: compute dtype (bfloat16 on accelerators); parameters stay float32.
    bn_group: examples per BatchNorm statistics group in training (config.model.bn_group):
      0 = the whole batch, G > 0 = consecutive blocks of G rows (`resnet.BatchNorm.group_size`).
      Models without BatchNorm (the ViT) do not read it.
    batch_norm: (class attribute) whether the network has BatchNorm layers (False: the ViT).
    stage_outputs: (class attribute) 'feature_maps' ([batch, H, W, C]) or 'tokens'
      ([batch, tokens, D]); methods that need convolutional maps (BYOT) check it.
  """
  num_classes: int = 1000
  head_hidden: Sequence[int] = ()
  dtype: Any = jnp.float32
  bn_group: int = 0
  stage_outputs: ClassVar[str] = 'feature_maps'
  batch_norm: ClassVar[bool] = True

  @classmethod
  def check_options(cls, options: Mapping[str, Any]) -> None:
    """Raises ValueError('<option>: <what to change>') when the constructor arguments `options`
    (registered defaults included; absent ones take the class defaults) cannot build this
    network. Config validation calls it before anything compiles, `setup` again."""

  def _check_own_options(self) -> None:
    self.check_options({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                        if f.name not in ('parent', 'name')})

  def _stem(self, images: jax.Array, train: bool) -> jax.Array:
    raise NotImplementedError

  def _pool(self, x: jax.Array) -> jax.Array:
    return heads.global_average_pool(x)

  def _make_head(self) -> heads.Head:
    return heads.Head(self.num_classes, tuple(self.head_hidden), self.dtype)

  def __call__(self, images: jax.Array, train: bool) -> jax.Array:
    """Images `[batch, H, W, 3]` -> float32 logits `[batch, num_classes]`."""
    return self.head(self.features(images, train))

  def features(self, images: jax.Array, train: bool) -> jax.Array:
    """Images `[batch, H, W, 3]` -> float32 pooled features `[batch, D]`."""
    return self.from_stage(len(self.layers), self.stages(images, train)[-1], train)

  def head(self, features: jax.Array) -> jax.Array:
    """Pooled features `[batch, D]` -> float32 logits `[batch, num_classes]`."""
    return self.classifier(features)

  def stages(self, images: jax.Array, train: bool) -> list:
    """Images `[batch, H, W, 3]` -> the 4 stage outputs (see the module docstring)."""
    x = self._stem(images, train)
    outputs = []
    for layer in self.layers:
      x = layer(x, train)
      outputs.append(x)
    return outputs

  def from_stage(self, k: int, x: jax.Array, train: bool) -> jax.Array:
    """Runs stages k+1..4 on the stage-k output `x`, then pools: `[batch, D]` float32.

    `k` is a static Python int in 1..4; `from_stage(4, x)` only pools.
    """
    if not 1 <= k <= len(self.layers):
      raise ValueError(f'from_stage: k must be in 1..{len(self.layers)}, got {k}')
    for layer in self.layers[k:]:
      x = layer(x, train)
    return self._pool(x)
