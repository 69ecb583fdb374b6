"""Greedy and beam search: brute force over a fake model, EOS rules, beam 1 == greedy, the
cached Transformer against recomputation, traces, 8 devices == 1 device."""
import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import parallel
from sdd_jax.translation import decode
from sdd_jax.translation import model as model_lib
from sdd_jax.translation.tokens import BOS, EOS, PAD, UNK

# Fake model: next-token log-probs from a hash of the whole prefix (state = the hash), so a
# search that mixes up its beams' states scores the wrong prefixes.
VOCAB, BUCKETS = 7, 97
CONTENT = [UNK, 4, 5, 6]  # the tokens a hypothesis may hold besides EOS (never PAD, BOS)


def hash_table(seed=0):
  logits = np.random.default_rng(seed).normal(size=(BUCKETS, VOCAB)) * 2
  return np.asarray(jax.nn.log_softmax(jnp.asarray(logits, jnp.float32)))


def hash_step(table):
  def step_fn(state, last, t):
    del t
    state = (state * 31 + last + 1) % BUCKETS
    return jnp.asarray(table)[state], state
  return step_fn


def hash_log_probs(table, start, prefix):
  """Python twin of `hash_step`: log-probs after BOS + prefix, for a row starting at `start`."""
  h = start
  for token in [BOS] + list(prefix):
    h = (h * 31 + token + 1) % BUCKETS
  return table[h]


def brute_force(table, start, max_len, length_penalty):
  """Best hypothesis over every allowed sequence: 1..max_len-1 content tokens, then EOS."""
  best, best_score = None, -np.inf
  for n in range(1, max_len):
    for prefix in itertools.product(CONTENT, repeat=n):
      total = sum(float(hash_log_probs(table, start, prefix[:i])[tok])
                  for i, tok in enumerate(prefix))
      total += float(hash_log_probs(table, start, prefix)[EOS])
      score = total / (n + 1)**length_penalty
      if score > best_score:
        best, best_score = list(prefix) + [EOS], score
  return best + [PAD] * (max_len - len(best))


@pytest.mark.parametrize('length_penalty', [0.0, 1.0, 2.0])
def test_a_wide_beam_finds_the_brute_force_best(length_penalty):
  # 4 content tokens, max_len 4: 4 + 16 + 64 finished hypotheses, 16 live at most before the
  # last step; a beam of 128 never drops one, so beam search must return the exhaustive best.
  table, max_len, beams, starts = hash_table(), 4, 128, [0, 11]
  state = jnp.repeat(jnp.asarray(starts, jnp.int32), beams)
  search = jax.jit(functools.partial(
      decode.beam_search_steps, hash_step(table), batch_size=2, beam_size=beams,
      length_penalty=length_penalty, max_len=max_len))
  tokens = np.asarray(search(state))
  for row, start in enumerate(starts):
    assert tokens[row].tolist() == brute_force(table, start, max_len, length_penalty)


def python_greedy(table, start, max_len):
  out = []
  for t in range(max_len):
    log_probs = hash_log_probs(table, start, out).copy()
    log_probs[[PAD, BOS]] = -np.inf
    if t == 0:
      log_probs[EOS] = -np.inf
    token = EOS if t == max_len - 1 else int(np.argmax(log_probs))
    out.append(token)
    if token == EOS:
      break
  return out + [PAD] * (max_len - len(out))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_greedy_and_beam_one_equal_a_python_greedy(seed):
  table, max_len, starts = hash_table(seed), 6, [0, 5, 17, 42]
  state = jnp.asarray(starts, jnp.int32)
  greedy = np.asarray(decode.greedy_search_steps(hash_step(table), state, 4, max_len))
  beam = np.asarray(decode.beam_search_steps(hash_step(table), state, batch_size=4, beam_size=1,
                                             length_penalty=1.0, max_len=max_len))
  expected = [python_greedy(table, start, max_len) for start in starts]
  assert greedy.tolist() == expected
  assert beam.tolist() == expected


def markov_step(next_log_probs):
  """Fake model whose log-probs depend on the last token only: `next_log_probs[last]`."""
  def step_fn(state, last, t):
    del t
    return jnp.asarray(next_log_probs, jnp.float32)[last], state
  return step_fn


def markov_table(rows):
  """`rows[last] = {token: prob}`; unspecified tokens get probability 1e-6."""
  table = np.full((VOCAB, VOCAB), 1e-6)
  for last, probs in rows.items():
    for token, p in probs.items():
      table[last, token] = p
  return np.log(table / table.sum(axis=1, keepdims=True))


def test_beam_search_beats_greedy_on_a_constructed_case():
  # After BOS: 4 (0.6) or 5 (0.4). After 4 everything is even; after 5 EOS is near certain.
  table = markov_table({BOS: {4: 0.6, 5: 0.4},
                        4: {UNK: 0.2, 4: 0.2, 5: 0.2, 6: 0.2, EOS: 0.2},
                        5: {EOS: 0.99}})
  state = jnp.zeros((2,), jnp.int32)
  greedy = np.asarray(decode.greedy_search_steps(markov_step(table), state[:1], 1, 5))
  beam = np.asarray(decode.beam_search_steps(markov_step(table), state, batch_size=1,
                                             beam_size=2, length_penalty=1.0, max_len=5))
  assert greedy[0, 0] == 4
  assert beam.tolist() == [[5, EOS, PAD, PAD, PAD]]

  def score(seq):
    tokens = [t for t in seq if t != PAD]
    total = sum(table[last, tok] for last, tok in zip([BOS] + tokens[:-1], tokens))
    return total / len(tokens)
  assert score(beam[0]) > score(greedy[0])


@pytest.mark.parametrize('beams', [1, 3])
def test_eos_rules(beams):
  # EOS is the likeliest token everywhere, yet never first; then only PAD follows.
  table = markov_table({last: {EOS: 0.9, 6: 0.1} for last in range(VOCAB)})
  state = jnp.zeros((beams,), jnp.int32)
  out = decode.beam_search_steps(markov_step(table), state, batch_size=1, beam_size=beams,
                                 length_penalty=1.0, max_len=5)
  assert np.asarray(out).tolist() == [[6, EOS, PAD, PAD, PAD]]
  # A model that never wants EOS is stopped at max_len with EOS forced last.
  table = markov_table({last: {4: 0.9, EOS: 1e-9} for last in range(VOCAB)})
  out = decode.beam_search_steps(markov_step(table), state, batch_size=1, beam_size=beams,
                                 length_penalty=1.0, max_len=4)
  assert np.asarray(out).tolist() == [[4, 4, 4, EOS]]
  greedy = decode.greedy_search_steps(markov_step(table), state[:1], 1, 4)
  assert np.asarray(greedy).tolist() == [[4, 4, 4, EOS]]


def test_output_length_is_fairseqs():
  assert decode.output_length(10, 1.2, 10, 1024) == 22 + 1
  assert decode.output_length(10, 0, 200, 1024) == 201
  assert decode.output_length(1000, 0, 200, 64) == 64


# The real Transformer, tiny; a wide random init gives peaked, distinct distributions.
def tiny_model():
  return model_lib.Transformer(vocab_size=20, num_encoder_layers=1, num_decoder_layers=1,
                               d_model=16, ffn_dim=32, num_heads=2, max_len=32)


@functools.lru_cache(maxsize=None)
def tiny_setup():
  model = tiny_model()
  rng = np.random.default_rng(0)
  src = rng.integers(4, 20, size=(8, 6)).astype(np.int32)
  src[:, -1] = EOS
  src[1, 3:] = PAD
  src[1, 2] = EOS
  variables = jax.jit(model.init, static_argnames='train')(jax.random.key(1), src, src,
                                                          train=False)
  variables = jax.tree.map(lambda x: x * 3, variables)
  return model, variables, src


jitted_greedy = jax.jit(decode.greedy_search, static_argnums=(0, 3))


def recomputed_greedy(model, variables, src, max_len):
  """Greedy decoding that reruns the full decoder on the whole prefix at every step."""
  out = np.full((src.shape[0], max_len), PAD, np.int32)
  tgt_in = np.full((src.shape[0], max_len), PAD, np.int32)
  tgt_in[:, 0] = BOS
  done = np.zeros(src.shape[0], bool)
  apply = jax.jit(model.apply, static_argnames='train')
  for t in range(max_len):
    logits = np.asarray(apply(variables, src, tgt_in, train=False))[:, t]
    log_probs = np.asarray(decode.allowed_log_probs(jax.nn.log_softmax(logits), t, max_len))
    token = np.where(done, PAD, log_probs.argmax(-1))
    out[:, t] = token
    done |= token == EOS
    if t + 1 < max_len:
      tgt_in[:, t + 1] = np.where(done, PAD, token)
  return out


def test_cached_greedy_equals_recomputing_the_prefix():
  model, variables, src = tiny_setup()
  greedy = np.asarray(jitted_greedy(model, variables, src, 9))
  np.testing.assert_array_equal(greedy, recomputed_greedy(model, variables, src, 9))
  assert (greedy == EOS).sum(axis=1).tolist() == [1] * 8


def test_transformer_beam_one_equals_greedy_and_traces_once():
  model, variables, src = tiny_setup()
  greedy_fn = jax.jit(chex.assert_max_traces(decode.greedy_search, n=1), static_argnums=(0, 3))

  def beam_one(model, variables, src, max_len):
    return decode.beam_search(model, variables, src, beam_size=1, length_penalty=1.0,
                              max_len=max_len)
  beam_fn = jax.jit(chex.assert_max_traces(beam_one, n=1), static_argnums=(0, 3))
  other = jax.tree.map(lambda x: x * 1.1, variables)
  for v in (variables, other):   # new values, same shapes: no new trace
    greedy = np.asarray(greedy_fn(model, v, src, 9))
    beam = np.asarray(beam_fn(model, v, src, 9))
    np.testing.assert_array_equal(beam, greedy)


def test_translate_fn_on_8_devices_equals_1_device():
  model, variables, src = tiny_setup()
  assert len(jax.devices()) == 8
  outputs = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.create_mesh(devices)
    translate_fn = decode.make_translate_fn(model, mesh, beam_size=3, length_penalty=1.0,
                                            max_len_a=1.0, max_len_b=2)
    replicated = parallel.replicate(variables, mesh)
    tokens = translate_fn(replicated, src)
    assert tokens.shape == (8, 9)
    assert tokens.sharding.spec == parallel.data_sharding(mesh).spec
    outputs.append(np.asarray(tokens))
  translate_fn(replicated, src)
  assert translate_fn._cache_size() == 1  # pylint: disable=protected-access
  assert translate_fn(replicated, src[:, :5]).shape == (8, 5 + 2 + 1)  # a new source width:
  assert translate_fn._cache_size() == 2  # pylint: disable=protected-access  # one compilation
  np.testing.assert_array_equal(outputs[0], outputs[1])
  # Beam 3 is not greedy here, so the comparison covers the beam bookkeeping too.
  assert not np.array_equal(outputs[0], np.asarray(jitted_greedy(model, variables, src, 9)))
