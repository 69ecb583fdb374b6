"""The top of every network: global average pooling, the classifier head, and the
staged-network contract that ResNets and DenseNets share.

Every model in `sdd_jax.models` is a `StagedNetwork`:

  __call__(images, train)    -> logits   [batch, classes]             (float32)
  features(images, train)    -> features [batch, D]                   (float32)
  head(features)             -> logits   [batch, classes]             (float32)
  stages(images, train)      -> 4 stage outputs, each [batch, H, W, C] (compute dtype)
  from_stage(k, x, train)    -> features [batch, D], x = stage-k output, k in 1..4

with `__call__(x) == head(features(x))` and
`features(x) == from_stage(k, stages(x)[k - 1])` for every k.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def global_average_pool(x: jax.Array) -> jax.Array:
  """Mean over the spatial axes, accumulated and returned in float32.

  Args:
    x: feature maps `[batch, height, width, channels]`.

  Returns:
    `[batch, channels]` float32.
  """
  return jnp.mean(x, axis=(1, 2), dtype=jnp.float32)


def torch_linear_bias_init(fan_in: int):
  """PyTorch `nn.Linear` bias initialiser: uniform in +-1/sqrt(fan_in)."""
  bound = 1.0 / fan_in**0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


# PyTorch `nn.Linear` weight initialiser (kaiming_uniform with a=sqrt(5)): uniform in
# +-1/sqrt(fan_in), i.e. variance 1/(3 fan_in).
torch_linear_kernel_init = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


class Head(nn.Module):
  """Classifier on pooled features: `[Dense(h) -> ReLU] * len(hidden) -> Dense(classes)`.

  `hidden=()` (default) is the usual single linear layer; `hidden=(512,)` is the
  two-layer head of SD-Dropout Table 13. Dense layers are initialised as PyTorch's
  `nn.Linear` (weight and bias uniform in +-1/sqrt(fan_in)).

  Attributes:
    num_classes: number of output logits.
    hidden: widths of the hidden layers, in order.
    dtype: compute dtype; parameters are float32 and the logits are returned float32.
  """
  num_classes: int
  hidden: Sequence[int] = ()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    """Maps features `[batch, D]` to float32 logits `[batch, num_classes]`."""
    x = features
    for i, width in enumerate(tuple(self.hidden) + (self.num_classes,)):
      if i > 0:
        x = nn.relu(x)
      name = f'hidden_{i}' if i < len(self.hidden) else 'output'
      x = nn.Dense(
          width,
          kernel_init=torch_linear_kernel_init,
          bias_init=torch_linear_bias_init(x.shape[-1]),
          dtype=self.dtype,
          param_dtype=jnp.float32,
          name=name)(x)
    return x.astype(jnp.float32)


class StagedNetwork(nn.Module):
  """Base class: a stem, four stages (`self.layers`) and a `Head` (`self.classifier`).

  Subclasses define `setup()` (creating `layers`, a list of 4 modules called as
  `layer(x, train)`, and `classifier`) and `_stem(images, train)`.

  Attributes:
    num_classes: number of output logits.
    head_hidden: hidden widths of the head (see `Head`); `(512,)` for Table 13.
    dtype: compute dtype (bfloat16 on accelerators); parameters stay float32.
  """
  num_classes: int = 1000
  head_hidden: Sequence[int] = ()
  dtype: Any = jnp.float32

  def _stem(self, images: jax.Array, train: bool) -> jax.Array:
    raise NotImplementedError

  def _make_head(self) -> Head:
    return Head(self.num_classes, tuple(self.head_hidden), self.dtype)

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
    """Images `[batch, H, W, 3]` -> the 4 stage outputs, each `[batch, H_k, W_k, C_k]`."""
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
    return global_average_pool(x)
