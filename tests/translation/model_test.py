"""Transformer: parameter count by hand, PAD invariance, causality, shared embedding, cache."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sdd_jax.translation import model as model_lib
from sdd_jax.translation import tokens

VOCAB = 20


def tiny(**overrides):
  options = dict(vocab_size=VOCAB, num_encoder_layers=1, num_decoder_layers=1, d_model=16,
                 ffn_dim=32, num_heads=2, dropout=0.1, max_len=32)
  options.update(overrides)
  return model_lib.Transformer(**options)


def random_ids(rng, shape):
  return rng.integers(4, VOCAB, size=shape).astype(np.int32)


def init(model, src, tgt):
  return jax.jit(model.init, static_argnames='train')(jax.random.key(0), src, tgt, train=False)


def jitted(model):
  """`model.apply` under one jit (eager op-by-op dispatch compiles every op on its own)."""
  return jax.jit(model.apply, static_argnames=('train', 'method', 'mutable'))


def num_params(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('pre_norm', [False, True])
def test_parameter_count_of_the_default_size_equals_the_formula(pre_norm):
  # fairseq transformer_iwslt_de_en with a 10k joint vocabulary, decoder input/output shared.
  vocab, d, ffn = 10_000, 512, 1024
  attention = 4 * (d * d + d)              # q, k, v, out projections with biases
  layer_norm = 2 * d
  feed_forward = d * ffn + ffn + ffn * d + d
  encoder_layer = attention + layer_norm + feed_forward + layer_norm
  decoder_layer = 2 * (attention + layer_norm) + feed_forward + layer_norm
  final_norms = 2 * layer_norm if pre_norm else 0
  expected = 2 * vocab * d + 6 * encoder_layer + 6 * decoder_layer + final_norms
  assert expected == 41_783_296 + final_norms
  model = model_lib.Transformer(vocab_size=vocab, pre_norm=pre_norm)
  ids = jnp.ones((1, 3), jnp.int32)
  shapes = jax.eval_shape(lambda: init(model, ids, ids))
  assert set(shapes) == {'params'}
  assert num_params(shapes) == expected


def test_decoder_input_embedding_is_the_output_projection():
  rng = np.random.default_rng(0)
  src, tgt = random_ids(rng, (2, 5)), random_ids(rng, (2, 4))
  model = tiny()
  params = init(model, src, tgt)['params']
  assert 'output_projection' not in params
  table = params['decoder_embedding']['embedding']
  assert table.shape == (VOCAB, 16)
  # Zeroing one row of the shared table zeroes that token's logit everywhere (no bias).
  zeroed = jax.tree.map(lambda x: x, params)
  zeroed['decoder_embedding']['embedding'] = table.at[7].set(0)
  logits = jitted(model)({'params': zeroed}, src, tgt, train=False)
  np.testing.assert_array_equal(np.asarray(logits[..., 7]), 0)
  unshared = tiny(share_decoder_embeddings=False)
  shapes = jax.eval_shape(lambda: init(unshared, src, tgt))['params']
  assert shapes['output_projection']['kernel'].shape == (16, VOCAB)
  assert num_params(shapes) == num_params(params) + 16 * VOCAB


def test_pad_row_of_embeddings_starts_at_zero():
  rng = np.random.default_rng(0)
  params = init(tiny(), random_ids(rng, (1, 3)), random_ids(rng, (1, 3)))['params']
  for name in ('encoder_embedding', 'decoder_embedding'):
    table = np.asarray(params[name]['embedding'])
    np.testing.assert_array_equal(table[tokens.PAD], 0)
    assert abs(table[1:].std() - 16**-0.5) < 0.05


@pytest.mark.parametrize('pre_norm', [False, True])
def test_adding_pad_changes_no_logit_of_real_positions(pre_norm):
  rng = np.random.default_rng(1)
  src = random_ids(rng, (3, 6))
  tgt = random_ids(rng, (3, 5))
  src[0, 4:] = tokens.PAD   # a row already padded
  tgt[1, 3:] = tokens.PAD
  model = tiny(pre_norm=pre_norm)
  variables = init(model, src, tgt)
  apply = jitted(model)
  logits = apply(variables, src, tgt, train=False)
  src_padded = np.pad(src, ((0, 0), (0, 3)), constant_values=tokens.PAD)
  tgt_padded = np.pad(tgt, ((0, 0), (0, 4)), constant_values=tokens.PAD)
  padded = apply(variables, src_padded, tgt_padded, train=False)
  real = tgt != tokens.PAD
  np.testing.assert_allclose(np.asarray(padded[:, :5])[real], np.asarray(logits)[real],
                             rtol=1e-5, atol=1e-5)
  # The PAD keys do matter once unmasked: a real token in their place changes the logits.
  src_other = src_padded.copy()
  src_other[:, -1] = 5
  other = apply(variables, src_other, tgt_padded, train=False)
  assert np.abs(np.asarray(other[:, :5])[real] - np.asarray(logits)[real]).max() > 1e-4


def test_changing_a_target_token_changes_no_earlier_logit():
  rng = np.random.default_rng(2)
  src, tgt = random_ids(rng, (2, 5)), random_ids(rng, (2, 6))
  model = tiny()
  variables = init(model, src, tgt)
  apply = jitted(model)
  logits = np.asarray(apply(variables, src, tgt, train=False))
  for t in range(6):
    changed = tgt.copy()
    changed[:, t] = 4 + (changed[:, t] - 3) % (VOCAB - 4)
    new = np.asarray(apply(variables, src, changed, train=False))
    np.testing.assert_array_equal(new[:, :t], logits[:, :t])
    assert np.abs(new[:, t:] - logits[:, t:]).max() > 1e-4


def test_positions_are_fairseq_sinusoids_starting_after_its_padding_index():
  table = model_lib.sinusoidal_positions(10, 8)
  half = 4
  for p in (0, 2, 7):
    for i in range(half):
      angle = p * 10000 ** (-i / (half - 1))
      assert table[p, i] == pytest.approx(math.sin(angle), abs=1e-6)
      assert table[p, half + i] == pytest.approx(math.cos(angle), abs=1e-6)
  # One target token, zero embeddings: the decoder input is the position vector of row 2.
  model = tiny(num_decoder_layers=0, num_encoder_layers=0)
  src, tgt = np.array([[5]], np.int32), np.array([[5, tokens.PAD]], np.int32)
  variables = init(model, src, tgt)
  embed = model.bind(variables)._embed
  x = embed(model.bind(variables).decoder_embedding, jnp.asarray(tgt),
            model_lib.Transformer.positions_of(jnp.asarray(tgt)), train=False)
  table16 = model_lib.sinusoidal_positions(4, 16)
  token = np.asarray(variables['params']['decoder_embedding']['embedding'][5]) * 4.0
  np.testing.assert_allclose(np.asarray(x[0, 0]), token + table16[2], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(x[0, 1]), 0)  # PAD: zero token row, no position


@pytest.mark.parametrize('pre_norm', [False, True])
def test_incremental_decoding_with_the_cache_equals_the_full_decoder(pre_norm):
  rng = np.random.default_rng(3)
  src, tgt = random_ids(rng, (2, 5)), random_ids(rng, (2, 6))
  src[1, 3:] = tokens.PAD
  model = tiny(pre_norm=pre_norm)
  variables = init(model, src, tgt)
  full = jitted(model)(variables, src, tgt, train=False)
  cached = model.clone(use_cache=True)
  encoded = jitted(model)(variables, src, train=False, method='encode')
  cache = jax.eval_shape(lambda: cached.apply(variables, encoded, src, tgt, train=False,
                                              method='decode', mutable=['cache'])[1])
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache)
  for t in range(tgt.shape[1]):
    step, cache = jitted(cached)({**variables, **cache}, encoded, src, tgt[:, t:t + 1],
                                 train=False, method='decode', mutable=('cache',))
    np.testing.assert_allclose(np.asarray(step[:, 0]), np.asarray(full[:, t]),
                               rtol=1e-5, atol=1e-5)


def test_bfloat16_compute_keeps_float32_parameters_and_logits():
  rng = np.random.default_rng(4)
  src, tgt = random_ids(rng, (2, 5)), random_ids(rng, (2, 4))
  model = tiny(dtype=jnp.bfloat16)
  variables = init(model, src, tgt)
  assert {x.dtype for x in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  logits = jitted(model)(variables, src, tgt, train=False)
  assert logits.dtype == jnp.float32
  reference = jitted(tiny())(variables, src, tgt, train=False)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(reference), atol=0.1)
  # ... and computed in bfloat16 (8-bit mantissa: ~1e-2 apart), not in float32 (~1e-6).
  assert np.abs(np.asarray(logits) - np.asarray(reference)).max() > 1e-3


def test_dropout_draws_from_the_dropout_collection_in_training_only():
  rng = np.random.default_rng(5)
  src, tgt = random_ids(rng, (2, 5)), random_ids(rng, (2, 4))
  model = tiny(dropout=0.3, attention_dropout=0.1, activation_dropout=0.1)
  variables = init(model, src, tgt)
  apply = jitted(model)

  def train(seed):
    return apply(variables, src, tgt, train=True, rngs={'dropout': jax.random.key(seed)})
  np.testing.assert_array_equal(train(1), train(1))
  assert np.abs(np.asarray(train(1) - train(2))).max() > 1e-3
  evaluation = apply(variables, src, tgt, train=False)
  assert np.abs(np.asarray(train(1) - evaluation)).max() > 1e-3


def test_create_model_from_config():
  config = ml_collections.ConfigDict(dict(num_encoder_layers=1, num_decoder_layers=2,
                                          d_model=16, dtype='bfloat16'))
  model = model_lib.create_model(config, vocab_size=VOCAB)
  assert (model.num_decoder_layers, model.d_model, model.ffn_dim) == (2, 16, 1024)
  assert model.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match='model.heads: not a Transformer field'):
    model_lib.create_model(ml_collections.ConfigDict(dict(heads=4)), vocab_size=VOCAB)


def test_initialisers_are_fairseqs():
  # Xavier-uniform: variance gain^2 * 2 / (fan_in + fan_out); q/k/v with gain 1/sqrt(2).
  d, ffn = 128, 256
  model = tiny(d_model=d, ffn_dim=ffn, num_heads=4)
  ids = jnp.ones((1, 3), jnp.int32)
  params = init(model, ids, ids)['params']['encoder_layers_0']
  attention = params['self_attention']
  for name in ('query', 'key', 'value'):
    assert attention[name]['kernel'].shape == (d, 4, d // 4)
    assert np.std(attention[name]['kernel']) == pytest.approx((0.5 * 2 / (2 * d))**0.5, rel=0.05)
    np.testing.assert_array_equal(attention[name]['bias'], 0)
  assert np.std(attention['out']['kernel']) == pytest.approx((2 / (2 * d))**0.5, rel=0.05)
  assert np.std(params['ffn']['fc1']['kernel']) == pytest.approx((2 / (d + ffn))**0.5, rel=0.05)
  np.testing.assert_array_equal(params['ffn']['fc2']['bias'], 0)
