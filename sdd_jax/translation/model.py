"""The encoder-decoder Transformer of translation, as fairseq's `transformer_iwslt_de_en`.

Defaults are that architecture: 6 encoder + 6 decoder layers, d_model 512, FFN 1024, 4 heads,
ReLU, dropout 0.3, post-norm (fairseq's default `encoder/decoder_normalize_before=False`;
`pre_norm=True` gives the pre-norm variant with a final LayerNorm after each stack, as fairseq),
and the decoder's input embedding doubles as its output projection
(`--share-decoder-input-output-embed`). The encoder has its own embedding table.

Choices, each as fairseq unless said:
  - Token embeddings are scaled by sqrt(d_model) and summed with fixed sinusoidal positions
    (fairseq's layout: sines in the first half of the channels, cosines in the second), then
    dropout. Positions count the non-PAD tokens from the left. fairseq numbers them from its
    padding index + 1 (its PAD is 1, so the first token has position 2); we keep fairseq's
    numbers (first token: sinusoid of position 2) although our PAD is 0, so that the
    embeddings equal fairseq's; PAD positions get a zero position vector.
  - Attention is `flax.linen.MultiHeadDotProductAttention` (query scaled by 1/sqrt(head_dim),
    q/k/v/out projections with biases, dropout on the attention weights). PAD keys are masked
    in every attention (encoder self, decoder self, decoder cross); decoder self-attention is
    also causal. Query rows at PAD positions are computed but never read.
  - Initialisers: embeddings N(0, d_model^-0.5) with the PAD row zero; q/k/v projections
    Xavier-uniform with gain 1/sqrt(2), the other dense kernels Xavier-uniform; biases zero.
  - `dtype` is the compute dtype (bfloat16 on accelerators); parameters are float32 and the
    logits are returned float32, as the image models do (`sdd_jax.models.heads.Head`).
    LayerNorm statistics are reduced in float32 (flax's default).
  - Incremental decoding: `use_cache=True` (flax's `decode=True` autoregressive-cache
    pattern, as the flax WMT example) makes `decode` take one target position per call and
    keep the decoder self-attention keys/values and the position in the `'cache'` collection,
    so that a decoding step costs one position instead of the whole prefix
    (`sdd_jax.translation.decode` uses it).

Shapes: `src` `[batch, src_len]`, `tgt_in` `[batch, tgt_len]` int32 token ids (PAD = 0, see
`tokens.py`); logits `[batch, tgt_len, vocab_size]` float32. Dropout draws from the
`'dropout'` rng collection when `train=True`.
"""
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sdd_jax.translation import tokens

# fairseq's padding index: positions start at FAIRSEQ_PAD + 1 (see the module docstring).
FAIRSEQ_PAD = 1

_xavier = nn.initializers.xavier_uniform()
# fairseq's MultiheadAttention: q/k/v projections Xavier-uniform with gain 1/sqrt(2).
_qkv_init = nn.initializers.variance_scaling(0.5, 'fan_avg', 'uniform')


def sinusoidal_positions(num_positions: int, dim: int) -> np.ndarray:
  """fairseq's `SinusoidalPositionalEmbedding.get_embedding` table, float32.

  Row p is `[sin(p * w_0) .. sin(p * w_{h-1}), cos(p * w_0) .. cos(p * w_{h-1})]` with
  `h = dim // 2` and `w_i = exp(-i * log(10000) / (h - 1))` (a zero column is appended when
  `dim` is odd).

  Returns:
    `[num_positions, dim]` float32.
  """
  half = dim // 2
  scale = math.log(10000) / (half - 1)
  freqs = np.exp(np.arange(half, dtype=np.float32) * -scale)
  angles = np.arange(num_positions, dtype=np.float32)[:, None] * freqs[None, :]
  table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
  if dim % 2:
    table = np.concatenate([table, np.zeros((num_positions, 1), np.float32)], axis=1)
  return table.astype(np.float32)


def _embedding_init(d_model: int):
  """N(0, d_model^-0.5) with the PAD row zero (fairseq's `Embedding`)."""
  def init(key, shape, dtype=jnp.float32):
    table = jax.random.normal(key, shape, dtype) * d_model**-0.5
    return table.at[tokens.PAD].set(0)
  return init


def key_padding_mask(queries: jax.Array, keys: jax.Array) -> jax.Array:
  """Attention mask `[batch, 1, q_len, k_len]`: True where the key is not PAD.

  Args:
    queries: `[batch, q_len]` token ids (only the shape is used).
    keys: `[batch, k_len]` token ids.
  """
  return nn.make_attention_mask(jnp.ones(queries.shape, bool), keys != tokens.PAD)


class FeedForward(nn.Module):
  """fc1 -> ReLU -> activation dropout -> fc2 (the residual dropout is the caller's)."""
  d_model: int
  ffn_dim: int
  activation_dropout: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=jnp.float32,
                              kernel_init=_xavier, bias_init=nn.initializers.zeros)
    x = nn.relu(dense(self.ffn_dim, name='fc1')(x))
    x = nn.Dropout(self.activation_dropout)(x, deterministic=not train)
    return dense(self.d_model, name='fc2')(x)


class _Layer(nn.Module):
  """Shared residual wiring: post-norm `LN(x + drop(f(x)))` or pre-norm `x + drop(f(LN(x)))`."""
  d_model: int
  ffn_dim: int
  num_heads: int
  dropout: float
  attention_dropout: float
  activation_dropout: float
  pre_norm: bool
  dtype: Any = jnp.float32

  def _attention(self, name: str, decode: bool = False) -> nn.MultiHeadDotProductAttention:
    return nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, qkv_features=self.d_model, out_features=self.d_model,
        dropout_rate=self.attention_dropout, dtype=self.dtype, param_dtype=jnp.float32,
        kernel_init=_qkv_init, out_kernel_init=_xavier, bias_init=nn.initializers.zeros,
        decode=decode, name=name)

  def _residual(self, x, sublayer, name: str, train: bool):
    norm = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, param_dtype=jnp.float32, name=name)
    y = norm(x) if self.pre_norm else x
    y = nn.Dropout(self.dropout)(sublayer(y), deterministic=not train)
    return x + y if self.pre_norm else norm(x + y)

  def _ffn(self, x, train):
    return FeedForward(self.d_model, self.ffn_dim, self.activation_dropout, self.dtype,
                       name='ffn')(x, train)


class EncoderLayer(_Layer):
  """Self-attention (PAD keys masked) then the feed-forward block."""

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, train: bool) -> jax.Array:
    attention = self._attention('self_attention')
    x = self._residual(x, lambda y: attention(y, y, mask=mask, deterministic=not train),
                       'self_attention_norm', train)
    return self._residual(x, lambda y: self._ffn(y, train), 'ffn_norm', train)


class DecoderLayer(_Layer):
  """Causal self-attention, cross-attention to the encoder output, feed-forward block."""
  decode: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, encoded: jax.Array, self_mask, cross_mask,
               train: bool) -> jax.Array:
    attention = self._attention('self_attention', decode=self.decode)
    x = self._residual(x, lambda y: attention(y, y, mask=self_mask, deterministic=not train),
                       'self_attention_norm', train)
    cross = self._attention('cross_attention')
    x = self._residual(
        x, lambda y: cross(y, encoded, mask=cross_mask, deterministic=not train),
        'cross_attention_norm', train)
    return self._residual(x, lambda y: self._ffn(y, train), 'ffn_norm', train)


class CachePosition(nn.Module):
  """Incremental decoding's position counter, kept in the `'cache'` collection.

  The initialising call (no cache yet) returns the ordinary positions of its full-length ids;
  each later call with one position `[batch, 1]` returns the count of earlier calls and adds 1.
  """

  @nn.compact
  def __call__(self, ids: jax.Array) -> jax.Array:
    cached = self.has_variable('cache', 'position')
    position = self.variable('cache', 'position', lambda: jnp.zeros((), jnp.int32))
    if not cached:
      return Transformer.positions_of(ids)
    positions = jnp.broadcast_to(position.value, ids.shape)
    position.value = position.value + 1
    return positions


class Transformer(nn.Module):
  """Encoder-decoder Transformer; defaults = fairseq `transformer_iwslt_de_en`.

  Attributes:
    vocab_size: size of the joint source/target vocabulary.
    num_encoder_layers: encoder layers.
    num_decoder_layers: decoder layers.
    d_model: model (embedding) width.
    ffn_dim: hidden width of the feed-forward blocks.
    num_heads: attention heads (d_model must be a multiple).
    dropout: residual and embedding dropout rate.
    attention_dropout: dropout rate on the attention weights.
    activation_dropout: dropout rate after the FFN's ReLU.
    pre_norm: LayerNorm before each sublayer (+ a final LayerNorm per stack) instead of after.
    share_decoder_embeddings: the decoder input embedding is also the output projection
      (one `[vocab_size, d_model]` parameter); False adds a separate bias-free projection.
    max_len: the longest source or target sequence the positions cover (fairseq's
      max_source_positions / max_target_positions); longer inputs are refused.
    dtype: compute dtype; parameters are float32 and the logits are returned float32.
    use_cache: incremental decoding (see the module docstring): `decode` is called once on a
      full-length `tgt_in` to create the `'cache'` collection (`decode.init_cache`), then
      with one position `[batch, 1]` per call.
  """
  vocab_size: int
  num_encoder_layers: int = 6
  num_decoder_layers: int = 6
  d_model: int = 512
  ffn_dim: int = 1024
  num_heads: int = 4
  dropout: float = 0.3
  attention_dropout: float = 0.0
  activation_dropout: float = 0.0
  pre_norm: bool = False
  share_decoder_embeddings: bool = True
  max_len: int = 1024
  dtype: Any = jnp.float32
  use_cache: bool = False

  def setup(self):
    if self.d_model % self.num_heads:
      raise ValueError(f'num_heads: {self.num_heads} does not divide d_model={self.d_model}; '
                       'choose num_heads that divides it')
    embed = functools.partial(nn.Embed, self.vocab_size, self.d_model, dtype=self.dtype,
                              param_dtype=jnp.float32,
                              embedding_init=_embedding_init(self.d_model))
    self.encoder_embedding = embed()
    self.decoder_embedding = embed()
    if not self.share_decoder_embeddings:
      self.output_projection = nn.Dense(
          self.vocab_size, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
          kernel_init=nn.initializers.normal(self.d_model**-0.5))
    layer = dict(d_model=self.d_model, ffn_dim=self.ffn_dim, num_heads=self.num_heads,
                 dropout=self.dropout, attention_dropout=self.attention_dropout,
                 activation_dropout=self.activation_dropout, pre_norm=self.pre_norm,
                 dtype=self.dtype)
    self.encoder_layers = [EncoderLayer(**layer) for _ in range(self.num_encoder_layers)]
    self.decoder_layers = [DecoderLayer(**layer, decode=self.use_cache)
                           for _ in range(self.num_decoder_layers)]
    if self.pre_norm:
      norm = functools.partial(nn.LayerNorm, epsilon=1e-5, dtype=self.dtype,
                               param_dtype=jnp.float32)
      self.encoder_norm = norm()
      self.decoder_norm = norm()
    self.embedding_dropout = nn.Dropout(self.dropout)
    if self.use_cache:
      self.cache_position = CachePosition()
    self.positions = jnp.asarray(sinusoidal_positions(self.max_len + FAIRSEQ_PAD + 1,
                                                      self.d_model))

  def _check_length(self, ids: jax.Array, what: str) -> None:
    if ids.shape[-1] > self.max_len:
      raise ValueError(f'{what} length {ids.shape[-1]} exceeds max_len={self.max_len}; '
                       'raise model.max_len or drop longer sentences')

  def _embed(self, table: nn.Embed, ids: jax.Array, positions: jax.Array,
             train: bool) -> jax.Array:
    """`[batch, len]` ids and 0-based positions (-1 = PAD) -> `[batch, len, d_model]`."""
    x = table(ids) * jnp.asarray(math.sqrt(self.d_model), self.dtype)
    position = jnp.where((positions >= 0)[..., None],
                         self.positions[positions + FAIRSEQ_PAD + 1], 0.0)
    x = x + position.astype(self.dtype)
    return self.embedding_dropout(x, deterministic=not train)

  @staticmethod
  def positions_of(ids: jax.Array) -> jax.Array:
    """0-based position of each non-PAD token counted from the left; -1 at PAD."""
    real = (ids != tokens.PAD).astype(jnp.int32)
    return jnp.cumsum(real, axis=-1) * real - 1

  def encode(self, src: jax.Array, train: bool) -> jax.Array:
    """Source ids `[batch, src_len]` -> encoder output `[batch, src_len, d_model]` (dtype)."""
    self._check_length(src, 'source')
    x = self._embed(self.encoder_embedding, src, self.positions_of(src), train)
    mask = key_padding_mask(src, src)
    for layer in self.encoder_layers:
      x = layer(x, mask, train)
    return self.encoder_norm(x) if self.pre_norm else x

  def decode(self, encoded: jax.Array, src: jax.Array, tgt_in: jax.Array,
             train: bool) -> jax.Array:
    """Decoder: float32 logits `[batch, tgt_len, vocab_size]`.

    Args:
      encoded: `encode(src)`, `[batch, src_len, d_model]`.
      src: source ids `[batch, src_len]` (for the cross-attention PAD mask).
      tgt_in: decoder input ids `[batch, tgt_len]` (BOS + target, right-padded). With
        `use_cache=True`: `[batch, 1]`, the token at the position kept in the cache (count of
        previous calls); its PAD-ness is ignored (the caller keeps finished rows apart).
      train: dropout on.
    """
    if self.use_cache:
      positions = self.cache_position(tgt_in)
      self_mask = None  # the attention cache masks the positions not yet written
    else:
      self._check_length(tgt_in, 'target')
      positions = self.positions_of(tgt_in)
      self_mask = nn.combine_masks(nn.make_causal_mask(tgt_in),
                                   key_padding_mask(tgt_in, tgt_in))
    cross_mask = key_padding_mask(tgt_in, src)
    x = self._embed(self.decoder_embedding, tgt_in, positions, train)
    for layer in self.decoder_layers:
      x = layer(x, encoded, self_mask, cross_mask, train)
    if self.pre_norm:
      x = self.decoder_norm(x)
    if self.share_decoder_embeddings:
      logits = self.decoder_embedding.attend(x)
    else:
      logits = self.output_projection(x)
    return logits.astype(jnp.float32)

  def __call__(self, src: jax.Array, tgt_in: jax.Array, train: bool) -> jax.Array:
    """Teacher-forced logits `[batch, tgt_len, vocab_size]` float32."""
    return self.decode(self.encode(src, train), src, tgt_in, train)


def create_model(model_config: ml_collections.ConfigDict, vocab_size: int) -> Transformer:
  """A `Transformer` from a config holding (some of) its field names; absent fields take the
  defaults. `dtype` may be a string ('bfloat16', 'float32'). Unknown keys are refused.

  Raises:
    ValueError: a key that is not a `Transformer` field (the message lists the known ones).
  """
  options = dict(model_config)
  options.pop('name', None)
  known = [f for f in Transformer.__dataclass_fields__ if f not in ('parent', 'name', 'use_cache',
                                                                    'vocab_size')]
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise ValueError(f'model.{unknown[0]}: not a Transformer field; known: {", ".join(known)}')
  if isinstance(options.get('dtype'), str):
    options['dtype'] = jnp.dtype(options['dtype'])
  return Transformer(vocab_size=vocab_size, **options)
