"""The top of every network: global average pooling and the classifier head (PyTorch
`nn.Linear` initialisers). The base class the models inherit is `base.StagedNetwork`.
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
