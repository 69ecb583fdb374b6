"""PS-KD for sequences (Kim et al. 2021): the teacher is the model as it was at the end of the
previous epoch.

The image version (`sdd_jax/methods/ps_kd.py`) keeps a table of each example's last softmax,
taken in training mode during its last visit. For translation that table would hold millions of
target tokens x the vocabulary, so the teacher is kept as WEIGHTS instead: `teacher` =
`params` at the end of epoch t-1, a method state in the train state
(`TrainState.method_states['ps_kd']['teacher']`, checkpointed with the rest, so a resumed run
continues with the very same teacher). Its predictions are teacher-forced on the current batch
in EVALUATION mode (no dropout), fresh for every batch, rather than each example's own stored
prediction from its last visit; where the image version records a prediction of the
augmented/dropout-perturbed student, this one distils the previous epoch's deterministic model.

The refresh happens INSIDE the jitted train step (`refresh_teacher`): after the update of the
step that ends an epoch, `teacher <- params`; at any other step the teacher is kept. So the
teacher changes exactly at epoch boundaries, with no host-side branch and one compiled step.
Targets at non-PAD positions: `(1 - alpha_t) * q + alpha_t * p_teacher` with
`alpha_t = alpha_T * t / T` (t the 1-based epoch, T the number of epochs; docs/methods.md's
`(epoch + 1) / num_epochs`) and `q` the one-hot target, or the label-smoothed one when PS-KD is
stacked on label smoothing (`losses.pskd_targets`). In the first epoch alpha is 0: there is no
previous epoch, the teacher (the initial weights) is unused and the targets are `q`.
"""
import jax
import jax.numpy as jnp

NAME = 'ps_kd'


def alpha_at(step: jax.Array, alpha: float, steps_per_epoch: int, num_epochs: int) -> jax.Array:
  """alpha_t for the epoch of `step` (0-based optimizer step): `alpha * (epoch + 1) /
  num_epochs` with the 0-based `epoch = step // steps_per_epoch`, and 0 in the first epoch."""
  epoch = step // steps_per_epoch
  return jnp.where(epoch == 0, 0.0, alpha * (epoch + 1) / num_epochs).astype(jnp.float32)


def init_state(params) -> dict:
  """The method state at step 0: a copy of the initial weights (unused in epoch 1)."""
  return {'teacher': jax.tree.map(jnp.copy, params)}


def refresh_teacher(state: dict, params, steps_done: jax.Array, steps_per_epoch: int) -> dict:
  """`{'teacher': params}` when `steps_done` (steps taken, after this step's update) ends an
  epoch, else `state` unchanged."""
  boundary = steps_done % steps_per_epoch == 0
  return {'teacher': jax.tree.map(lambda new, old: jnp.where(boundary, new, old), params,
                                  state['teacher'])}


def teacher_probs(model, teacher_params, src: jax.Array, tgt_in: jax.Array) -> jax.Array:
  """The teacher's teacher-forced predictions [batch, length, vocab] float32, evaluation mode,
  no gradient."""
  logits = model.apply({'params': teacher_params}, src, tgt_in, train=False)
  return jax.lax.stop_gradient(jax.nn.softmax(logits.astype(jnp.float32), axis=-1))
