"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") for 32x32
inputs: 4x4 patches (64 tokens) and a class token.

- Embedding: a `patch_size` x `patch_size` conv with stride `patch_size` (a linear map of each
  patch), a learned class token prepended, learned position embeddings added, dropout.
- Encoder block, pre-LayerNorm (as ViT / timm / big_vision):
  `x + drop_path(dropout(attention(LN(x))))`, then `x + drop_path(mlp(LN(x)))`, the MLP being
  Dense(mlp_dim) - GELU (exact) - dropout - Dense(D) - dropout.
- Stochastic depth (Huang et al. 2016; "drop path"): block i of L skips its residual branch for
  a whole example with probability `drop_path * i / (L - 1)` (0 for the first block,
  `drop_path` for the last, linear in between, as timm / big_vision), and scales the kept
  branch by 1 / (1 - rate) so the expectation is unchanged.
- Dropout and drop path act only with `train=True` and draw from the 'dropout' rng collection
  (`model.apply(..., rngs={'dropout': key})`); with both rates 0 training needs no key.
- Features: the class token after the final LayerNorm, float32 `[batch, D]` (not the mean
  token). `stages`: the blocks in 4 groups (`stage_sizes`, 3 blocks each for 12 layers); each
  stage output is the token sequence `[batch, 1 + patches, D]` (class token first) in the
  compute dtype, and `from_stage(k, x)` runs the remaining groups, the final norm and takes the
  class token.
- Initialisers as big_vision's ViT: Dense and attention kernels Xavier-uniform, MLP biases
  normal(1e-6), the patch conv LeCun-normal, class token 0, position embeddings normal(0.02).
  The classifier is the family's `Head` (PyTorch `nn.Linear` init), so `head_hidden` works.

Sizes (registered in `__init__.py`): ViT-Tiny D=192, 12 layers, 3 heads, MLP 768 (DeiT-Ti);
ViT-Small D=384, 12 layers, 6 heads, MLP 1536 (DeiT-S). No attention-weight dropout.
"""
import functools
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax.models import base

_dense_init = nn.initializers.xavier_uniform()


def drop_path(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
  """Stochastic depth on a residual branch `x` `[batch, ...]`: each example's branch is zeroed
  with probability `rate`, else scaled by 1 / (1 - rate) (so E[out] = x)."""
  if rate == 0:
    return x
  keep = 1.0 - rate
  mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype))


class Embedding(nn.Module):
  """Images `[batch, H, W, C]` -> tokens `[batch, 1 + (H / p) * (W / p), D]` (class token
  first, position embeddings added, dropout)."""
  hidden_size: int
  patch_size: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool) -> jax.Array:
    p = self.patch_size
    if images.shape[1] % p or images.shape[2] % p:
      raise ValueError(f'ViT: image side {images.shape[1]}x{images.shape[2]} is not a multiple '
                       f'of patch_size={p}')
    x = nn.Conv(self.hidden_size, (p, p), (p, p), padding='VALID', dtype=self.dtype,
                param_dtype=jnp.float32, name='patch_conv')(images)
    batch, h, w, dim = x.shape
    x = x.reshape(batch, h * w, dim)
    cls = self.param('cls_token', nn.initializers.zeros, (1, 1, dim), jnp.float32)
    x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (batch, 1, dim)), x], axis=1)
    position = self.param('position_embedding', nn.initializers.normal(0.02),
                          (1, 1 + h * w, dim), jnp.float32)
    x = x + position.astype(x.dtype)
    return nn.Dropout(self.dropout)(x, deterministic=not train)


class MlpBlock(nn.Module):
  """Dense(mlp_dim) - GELU - dropout - Dense(D) - dropout."""
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=jnp.float32,
                              kernel_init=_dense_init, bias_init=nn.initializers.normal(1e-6))
    y = nn.gelu(dense(self.mlp_dim, name='fc1')(x), approximate=False)
    y = nn.Dropout(self.dropout)(y, deterministic=not train)
    y = dense(x.shape[-1], name='fc2')(y)
    return nn.Dropout(self.dropout)(y, deterministic=not train)


class EncoderBlock(nn.Module):
  """Pre-LN transformer block `[batch, tokens, D]` -> same shape; `drop_path` is its rate."""
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  drop_path: float = 0.0
  dtype: Any = jnp.float32

  def _residual(self, y: jax.Array, train: bool) -> jax.Array:
    if not train or self.drop_path == 0:
      return y
    return drop_path(y, self.drop_path, self.make_rng('dropout'))

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    norm = functools.partial(nn.LayerNorm, dtype=self.dtype, param_dtype=jnp.float32)
    y = norm(name='norm1')(x)
    y = nn.MultiHeadDotProductAttention(
        self.num_heads, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=_dense_init,
        deterministic=True, name='attention')(y, y)
    y = nn.Dropout(self.dropout)(y, deterministic=not train)
    x = x + self._residual(y, train)
    y = MlpBlock(self.mlp_dim, self.dropout, self.dtype, name='mlp')(norm(name='norm2')(x), train)
    return x + self._residual(y, train)


class ViTStage(nn.Module):
  """A group of encoder blocks, block i with stochastic-depth rate `drop_path_rates[i]`."""
  num_heads: int
  mlp_dim: int
  drop_path_rates: Sequence[float]
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i, rate in enumerate(self.drop_path_rates):
      x = EncoderBlock(self.num_heads, self.mlp_dim, self.dropout, rate, self.dtype,
                       name=f'block{i}')(x, train)
    return x


def drop_path_rates(drop_path_rate: float, num_layers: int) -> np.ndarray:
  """Per-block stochastic-depth rates, linear from 0 (first block) to `drop_path_rate`
  (last block): timm's `linspace(0, drop_path_rate, depth)`."""
  return np.linspace(0.0, drop_path_rate, num_layers)


class ViT(base.StagedNetwork):
  """Vision Transformer; features D = `hidden_size` (the class token after the final norm).

  Attributes (besides `num_classes`, `head_hidden`, `dtype`):
    stage_sizes: encoder blocks per stage; 12 layers = (3, 3, 3, 3).
    patch_size: side of the square patches (4 for 32x32 images: 64 tokens + the class token).
    hidden_size: token width D.
    num_heads: attention heads (D must divide by it).
    mlp_dim: hidden width of each block's MLP.
    dropout: rate of the embedding, attention-output and MLP dropout.
    drop_path: stochastic-depth rate of the last block (linear from 0 at the first).
  """
  stage_sizes: Sequence[int] = (3, 3, 3, 3)
  patch_size: int = 4
  hidden_size: int = 192
  num_heads: int = 3
  mlp_dim: int = 768
  dropout: float = 0.0
  drop_path: float = 0.1
  stage_outputs: ClassVar[str] = 'tokens'
  batch_norm: ClassVar[bool] = False  # LayerNorm only: `bn_group` changes nothing

  @classmethod
  def check_options(cls, options):
    def get(name):
      return options.get(name, getattr(cls, name))

    if get('hidden_size') % get('num_heads'):
      raise ValueError(f"ViT: hidden_size={get('hidden_size')} must be a multiple of "
                       f"num_heads={get('num_heads')}")
    for name in ('dropout', 'drop_path'):
      if not 0 <= get(name) < 1:
        raise ValueError(f'ViT: {name} must be in [0, 1), got {get(name)}')

  def setup(self):
    self._check_own_options()
    self.embedding = Embedding(self.hidden_size, self.patch_size, self.dropout, self.dtype)
    rates = [float(r) for r in drop_path_rates(self.drop_path, sum(self.stage_sizes))]
    bounds = np.cumsum((0,) + tuple(self.stage_sizes))
    self.layers = [
        ViTStage(self.num_heads, self.mlp_dim, tuple(rates[start:stop]), self.dropout,
                 self.dtype)
        for start, stop in zip(bounds[:-1], bounds[1:])]
    self.encoder_norm = nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32)
    self.classifier = self._make_head()

  def _stem(self, images: jax.Array, train: bool) -> jax.Array:
    return self.embedding(images, train)

  def _pool(self, x: jax.Array) -> jax.Array:
    """Tokens `[batch, tokens, D]` -> the normalised class token `[batch, D]` float32."""
    return self.encoder_norm(x)[:, 0].astype(jnp.float32)
