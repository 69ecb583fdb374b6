"""Greedy and beam-search decoding of the translation Transformer, jit-able with static shapes.

Both searches run the decoder one position per step with the model's attention cache
(`Transformer(use_cache=True)`, flax's autoregressive-cache pattern): a step costs one target
position, not the whole prefix. The loop is a `lax.while_loop` over at most `max_len` steps
that stops early once every sentence is finished; every array keeps its shape throughout.

Conventions, as fairseq's `SequenceGenerator` with its defaults:
  - The output `[batch, max_len]` holds the tokens of the best hypothesis, its EOS included,
    then PAD. At most `max_len - 1` tokens precede EOS: at the last position EOS is forced.
  - PAD and BOS are never produced; EOS is not allowed at the first position (`min_len=1`,
    so no hypothesis is empty).
  - Beam search keeps `beam_size` live hypotheses. Each step takes the best `2 * beam_size`
    extensions; those among the first `beam_size` that end in EOS are finished, with the
    score `sum of token log-probs (EOS included) / length ** length_penalty`, length counting
    EOS; the best `beam_size` extensions not ending in EOS live on. A sentence stops taking
    finished hypotheses once it holds `beam_size` of them (fairseq then stops searching it);
    the result is its best-scoring finished hypothesis. At the first step only one beam is
    live (the others start at -inf), so the beams are distinct.
  - `beam_size=1` is greedy search, token for token (tested).

The search cores (`greedy_search_steps`, `beam_search_steps`) take a `step_fn(state, tokens,
t) -> (log_probs, state)` so that they are testable with a fake model of fixed log-probs.
"""
import functools
from typing import Any, Callable, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from sdd_jax import parallel
from sdd_jax.translation import tokens as tokens_lib

# step_fn(state, tokens [n] int32 (the previous position's tokens; BOS at t = 0), t)
#   -> (log_probs [n, vocab] float32, new state); the state's arrays have `n` rows (or are
#   scalars), so that beam search can reorder them.
StepFn = Callable[[Any, jax.Array, jax.Array], Tuple[jax.Array, Any]]


def output_length(src_len: int, max_len_a: float, max_len_b: int, model_max_len: int) -> int:
  """Output width for a source width: fairseq's `min(int(a * S + b), model_max_len - 1)`
  tokens before EOS, plus EOS. A Python int (static under jit)."""
  return min(int(max_len_a * src_len + max_len_b), model_max_len - 1) + 1


def allowed_log_probs(log_probs: jax.Array, t: jax.Array, max_len: int) -> jax.Array:
  """Log-probs `[n, vocab]` with the tokens not allowed at position `t` set to -inf: PAD and
  BOS always, EOS at t = 0, everything but EOS at t = max_len - 1."""
  vocab = jnp.arange(log_probs.shape[-1])
  allowed = (vocab != tokens_lib.PAD) & (vocab != tokens_lib.BOS)
  allowed &= (vocab != tokens_lib.EOS) | (t > 0)
  allowed = jnp.where(t == max_len - 1, vocab == tokens_lib.EOS, allowed)
  return jnp.where(allowed, log_probs.astype(jnp.float32), -jnp.inf)


def greedy_search_steps(step_fn: StepFn, state: Any, batch_size: int,
                        max_len: int) -> jax.Array:
  """Greedy decoding with `step_fn` over `batch_size` rows: tokens `[batch, max_len]`."""
  def cond(carry):
    t, _, _, _, done = carry
    return (t < max_len) & ~jnp.all(done)

  def body(carry):
    t, state, last, out, done = carry
    log_probs, state = step_fn(state, last, t)
    token = jnp.argmax(allowed_log_probs(log_probs, t, max_len), axis=-1).astype(jnp.int32)
    token = jnp.where(done, tokens_lib.PAD, token)
    out = lax.dynamic_update_slice(out, token[:, None], (0, t))
    return t + 1, state, token, out, done | (token == tokens_lib.EOS)

  out = jnp.full((batch_size, max_len), tokens_lib.PAD, jnp.int32)
  last = jnp.full((batch_size,), tokens_lib.BOS, jnp.int32)
  carry = (jnp.zeros((), jnp.int32), state, last, out, jnp.zeros((batch_size,), bool))
  return lax.while_loop(cond, body, carry)[3]


def _take_beams(x: jax.Array, index: jax.Array) -> jax.Array:
  """`x[b, index[b, j]]` for `x` `[batch, beams, ...]` and `index` `[batch, k]`."""
  index = index.reshape(index.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, index, axis=1)


def beam_search_steps(step_fn: StepFn, state: Any, *, batch_size: int, beam_size: int,
                      length_penalty: float, max_len: int) -> jax.Array:
  """Beam search with `step_fn` over `batch_size * beam_size` rows (row `b * beam_size + k`
  = beam k of sentence b): the best finished hypothesis per sentence, `[batch, max_len]`."""
  size, beams = batch_size, beam_size

  def cond(carry):
    t, *_, num_finished = carry
    return (t < max_len) & jnp.any(num_finished < beams)

  def body(carry):
    t, state, last, alive, alive_score, finished, finished_score, num_finished = carry
    log_probs, state = step_fn(state, last, t)
    log_probs = allowed_log_probs(log_probs, t, max_len)
    vocab = log_probs.shape[-1]
    scores = alive_score[:, :, None] + log_probs.reshape(size, beams, vocab)
    top_score, top_index = lax.top_k(scores.reshape(size, beams * vocab), 2 * beams)
    parent, token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
    candidates = _take_beams(alive, parent)
    candidates = lax.dynamic_update_slice(candidates, token[:, :, None], (0, 0, t))
    is_eos = token == tokens_lib.EOS

    # Finished: EOS among the best `beams` candidates, into the free slots in score order.
    new = is_eos[:, :beams] & jnp.isfinite(top_score[:, :beams])
    slot = num_finished[:, None] + jnp.cumsum(new, axis=1) - 1
    new &= slot < beams
    chosen = (slot[:, None, :] == jnp.arange(beams)[None, :, None]) & new[:, None, :]
    filled, pick = chosen.any(-1), jnp.argmax(chosen, axis=-1)       # [batch, slot]
    length = (t + 1).astype(jnp.float32)
    normalised = top_score[:, :beams] / length**length_penalty
    finished = jnp.where(filled[:, :, None], _take_beams(candidates[:, :beams], pick), finished)
    finished_score = jnp.where(filled, jnp.take_along_axis(normalised, pick, axis=1),
                               finished_score)
    num_finished = num_finished + new.sum(axis=1)

    # Alive: the best `beams` candidates that do not end in EOS.
    alive_score, keep = lax.top_k(jnp.where(is_eos, -jnp.inf, top_score), beams)
    alive = _take_beams(candidates, keep)
    rows = jnp.arange(size)[:, None] * beams + jnp.take_along_axis(parent, keep, axis=1)
    state = jax.tree.map(lambda x: x[rows.reshape(-1)] if x.ndim else x, state)
    last = jnp.take_along_axis(token, keep, axis=1).reshape(-1)
    return (t + 1, state, last, alive, alive_score, finished, finished_score, num_finished)

  empty = jnp.full((size, beams, max_len), tokens_lib.PAD, jnp.int32)
  first = jnp.where(jnp.arange(beams) == 0, 0.0, -jnp.inf)
  carry = (jnp.zeros((), jnp.int32), state,
           jnp.full((size * beams,), tokens_lib.BOS, jnp.int32),
           empty, jnp.broadcast_to(first, (size, beams)).astype(jnp.float32),
           empty, jnp.full((size, beams), -jnp.inf, jnp.float32),
           jnp.zeros((size,), jnp.int32))
  carry = lax.while_loop(cond, body, carry)
  alive, finished, finished_score = carry[3], carry[5], carry[6]
  best = jnp.argmax(finished_score, axis=1)
  result = _take_beams(finished, best[:, None])[:, 0]
  # Unreachable with EOS forced at the last step, unless every token is -inf: live beam 0.
  return jnp.where(jnp.isfinite(finished_score.max(axis=1))[:, None], result, alive[:, 0])


def init_cache(model, variables, encoded: jax.Array, src: jax.Array, max_len: int) -> Any:
  """The zero attention cache of `model.clone(use_cache=True)` for `src.shape[0]` rows and
  `max_len` target positions (shapes from `jax.eval_shape`; nothing is computed)."""
  cached = model.clone(use_cache=True)
  dummy = jnp.full((src.shape[0], max_len), tokens_lib.BOS, jnp.int32)
  shapes = jax.eval_shape(
      lambda: cached.apply(variables, encoded, src, dummy, train=False, method='decode',
                           mutable=['cache'])[1]['cache'])
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _transformer_search(model, variables, src: jax.Array, copies: int, max_len: int, search):
  """Encodes `src`, repeats each row `copies` times and runs `search(step_fn, cache)`."""
  if max_len > model.max_len:
    raise ValueError(f'max_len {max_len} exceeds the model max_len={model.max_len}')
  variables = {'params': variables['params']}
  encoded = model.apply(variables, src, train=False, method='encode')
  encoded = jnp.repeat(encoded, copies, axis=0)
  src = jnp.repeat(src, copies, axis=0)
  cached = model.clone(use_cache=True)

  def step_fn(cache, last, t):
    del t  # the cache counts the positions
    logits, mutated = cached.apply({**variables, 'cache': cache}, encoded, src, last[:, None],
                                   train=False, method='decode', mutable=['cache'])
    return jax.nn.log_softmax(logits[:, 0].astype(jnp.float32)), mutated['cache']

  return search(step_fn, init_cache(model, variables, encoded, src, max_len))


def greedy_search(model, variables, src: jax.Array, max_len: int) -> jax.Array:
  """Greedy decoding.

  Args:
    model: a `Transformer`.
    variables: its variables (`{'params': ...}`).
    src: source ids `[batch, src_len]` (ids + EOS, right-padded with PAD).
    max_len: output width, EOS included (Python int).

  Returns:
    `[batch, max_len]` int32: tokens, EOS, then PAD.
  """
  search = functools.partial(greedy_search_steps, batch_size=src.shape[0], max_len=max_len)
  return _transformer_search(model, variables, src, 1, max_len, search)


def beam_search(model, variables, src: jax.Array, *, beam_size: int, length_penalty: float,
                max_len: int) -> jax.Array:
  """Beam search (see the module docstring for the rules, which are fairseq's).

  Args:
    model: a `Transformer`.
    variables: its variables (`{'params': ...}`).
    src: source ids `[batch, src_len]` (ids + EOS, right-padded with PAD).
    beam_size: live hypotheses per sentence.
    length_penalty: finished scores are divided by `length ** length_penalty`.
    max_len: output width, EOS included (Python int).

  Returns:
    `[batch, max_len]` int32: the best hypothesis's tokens, EOS, then PAD.
  """
  search = functools.partial(beam_search_steps, batch_size=src.shape[0], beam_size=beam_size,
                             length_penalty=length_penalty, max_len=max_len)
  return _transformer_search(model, variables, src, beam_size, max_len, search)


def make_translate_fn(model, mesh, *, beam_size: int, length_penalty: float,
                      max_len_a: float, max_len_b: int):
  """Returns jitted `translate_fn(variables, src) -> tokens [batch, max_len]`.

  Sources are sharded over the mesh's 'data' axis (batch a multiple of the device count),
  variables replicated; the output width is `output_length(src_len, max_len_a, max_len_b,
  model.max_len)` with `src_len` the batch's padded source width (as fairseq's
  `src_tokens.size(1)`), so one compilation per source width. `beam_size=1` runs greedy search
  (the same tokens, cheaper). Matmuls run at float32 precision (no TF32 in evaluation, as
  `evaluators/predict.py`'s `make_logits_fn`).
  """
  data = parallel.data_sharding(mesh)

  def translate_fn(variables, src):
    max_len = output_length(src.shape[1], max_len_a, max_len_b, model.max_len)
    with jax.default_matmul_precision('float32'):
      if beam_size == 1:
        return greedy_search(model, variables, src, max_len)
      return beam_search(model, variables, src, beam_size=beam_size,
                         length_penalty=length_penalty, max_len=max_len)

  return jax.jit(translate_fn, in_shardings=(parallel.replicated_sharding(mesh), data),
                 out_shardings=data)
