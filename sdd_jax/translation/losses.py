"""Token-level losses of the translation task: label-smoothed cross-entropy (fairseq's
`label_smoothed_cross_entropy`) and the PS-KD soft-target cross-entropy, over non-PAD positions.

Conventions: `logits` [batch, length, vocab] (upcast to float32 inside), `labels` [batch,
length] int32 target ids (`tgt_out`), a position counts iff `labels != PAD`. Every function
returns per-token values `[batch, length]` that are exactly 0 at PAD positions; callers reduce
with `token_mean` (sum over the non-PAD positions of the GLOBAL batch divided by its non-PAD
count: under `jax.jit` over a data mesh the sums and the count are global, so the gradient is
fairseq's `sum / ntokens` over the whole batch, and one device equals eight).

Label smoothing as fairseq: `(1 - eps) * nll + eps * mean_v(-log p_v)`, i.e. the soft-target CE
with targets `(1 - eps) * onehot + eps / V` (epsilon spread over the whole vocabulary, PAD id
included, as fairseq's `eps_i = epsilon / lprobs.size(-1)`; fairseq >= 0.10 writes it
`(1 - eps - eps_i) * nll + eps_i * smooth`, the same quantity). PS-KD: targets
`(1 - alpha) * q_ls + alpha * p_teacher` (`pskd_targets`); its CE is computed as
`ls + alpha * (ce(p_teacher) - ls)` (`pskd_loss`), which is that CE term by term and is
bitwise the label-smoothed loss when alpha is 0, whatever the teacher.
"""
import jax
import jax.numpy as jnp

from sdd_jax.translation import tokens


def token_mask(labels: jax.Array) -> jax.Array:
  """[batch, length] float32: 1 where `labels != PAD`."""
  return (labels != tokens.PAD).astype(jnp.float32)


def _log_probs(logits: jax.Array) -> jax.Array:
  return jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), -1)


def label_smoothed_loss(logits: jax.Array, labels: jax.Array, epsilon: float) -> jax.Array:
  """Per-token `(1 - eps) * (-log p_y) + eps * mean_v(-log p_v)` [batch, length]; 0 at PAD.
  `epsilon = 0`: the plain NLL."""
  log_probs = _log_probs(logits)
  nll = -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
  smooth = -jnp.mean(log_probs, axis=-1)
  return ((1 - epsilon) * nll + epsilon * smooth) * token_mask(labels)


def nll_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-token negative log-likelihood [batch, length]; 0 at PAD."""
  return label_smoothed_loss(logits, labels, 0.0)


def soft_cross_entropy(logits: jax.Array, targets: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-token `-sum_v targets_v log p_v` [batch, length] for targets [batch, length, vocab];
  0 where `labels` is PAD."""
  return -jnp.sum(targets * _log_probs(logits), axis=-1) * token_mask(labels)


def pskd_targets(labels: jax.Array, teacher_probs: jax.Array, alpha, epsilon: float) -> jax.Array:
  """PS-KD soft targets [batch, length, vocab]: `(1 - alpha) * ((1 - eps) * onehot + eps / V)
  + alpha * teacher_probs` (epsilon = 0: PS-KD alone; alpha = 0: label smoothing alone). PAD
  rows are returned too (the losses zero them)."""
  vocab = teacher_probs.shape[-1]
  smoothed = (1 - epsilon) * jax.nn.one_hot(labels, vocab, dtype=jnp.float32) + epsilon / vocab
  return (1 - alpha) * smoothed + alpha * teacher_probs.astype(jnp.float32)


def pskd_loss(logits: jax.Array, labels: jax.Array, teacher_probs: jax.Array, alpha,
              epsilon: float) -> jax.Array:
  """Per-token CE against `pskd_targets(labels, teacher_probs, alpha, epsilon)` [batch,
  length]; 0 at PAD. Written `ls + alpha * (ce(teacher) - ls)`, so that alpha = 0 gives the
  label-smoothed loss bit for bit (and its gradient). `teacher_probs` gets no gradient."""
  smoothed = label_smoothed_loss(logits, labels, epsilon)
  teacher = soft_cross_entropy(logits, jax.lax.stop_gradient(teacher_probs), labels)
  return smoothed + alpha * (teacher - smoothed)


def token_mean(per_token: jax.Array, labels: jax.Array) -> jax.Array:
  """Sum of `per_token` over non-PAD positions / their count (1 if there are none)."""
  return jnp.sum(per_token) / jnp.maximum(jnp.sum(token_mask(labels)), 1.0)
