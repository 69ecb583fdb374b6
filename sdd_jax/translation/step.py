"""The translation train step (one `jax.jit`, compiled once per batch shape) and the
teacher-forced evaluation loss.

The loss is the token mean over the global batch's non-PAD target positions (`losses.py`) of
the label-smoothed CE, or of the PS-KD CE when `pskd_alpha` is set (`pskd.py`: the teacher's
eval-mode predictions, and its refresh at epoch boundaries inside this step). The step key is
`fold_in(key(seed), step)` and the dropout key comes from it as in the image step
(`train/keys.py`), so one device and eight, a straight run and a resumed one, draw
the same masks. Batch sharded on 'data', state replicated, input state donated.
"""
from typing import Optional

import jax
import jax.numpy as jnp
import optax

from sdd_jax import parallel
from sdd_jax.train import keys
from sdd_jax.translation import losses
from sdd_jax.translation import pskd
from sdd_jax.translation import tokens


def make_train_step(model, tx: optax.GradientTransformation, *, seed: int, lr_schedule, mesh,
                    epsilon: float, pskd_alpha: Optional[float], steps_per_epoch: int,
                    num_epochs: int):
  """Returns jitted `train_step(state, batch) -> (state, metrics)`.

  `batch`: global int32 arrays `src` [B, S], `tgt_in` [B, T], `tgt_out` [B, T] sharded on
  'data'. `pskd_alpha=None`: label smoothing (`epsilon`) alone; else PS-KD with alpha_T =
  `pskd_alpha` stacked on label smoothing (`epsilon = 0`: PS-KD alone) and
  `state.method_states['ps_kd']['teacher']` refreshed after the last step of each epoch.
  `metrics` (replicated scalars): `train/loss`, `train/nll` (token means), `train/tokens` (the
  global non-PAD count), `train/lr`, and `train/ps_kd_alpha` with PS-KD.
  """

  def train_step(state, batch):
    key = keys.step_key(seed, state.step)
    labels = batch['tgt_out']
    metrics = {}
    if pskd_alpha is not None:
      alpha = pskd.alpha_at(state.step, pskd_alpha, steps_per_epoch, num_epochs)
      teacher = pskd.teacher_probs(model, state.method_states[pskd.NAME]['teacher'],
                                   batch['src'], batch['tgt_in'])
      metrics['train/ps_kd_alpha'] = alpha

    def loss_fn(params):
      logits = model.apply({'params': params}, batch['src'], batch['tgt_in'], train=True,
                           rngs=keys.model_rngs(key))
      if pskd_alpha is None:
        per_token = losses.label_smoothed_loss(logits, labels, epsilon)
      else:
        per_token = losses.pskd_loss(logits, labels, teacher, alpha, epsilon)
      nll = losses.token_mean(losses.nll_loss(jax.lax.stop_gradient(logits), labels), labels)
      return losses.token_mean(per_token, labels), nll

    (loss, nll), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    method_states = dict(state.method_states)
    if pskd_alpha is not None:
      method_states[pskd.NAME] = pskd.refresh_teacher(state.method_states[pskd.NAME], params,
                                                      state.step + 1, steps_per_epoch)
    metrics.update({'train/loss': loss, 'train/nll': nll, 'train/lr': lr_schedule(state.step),
                    'train/tokens': jnp.sum(losses.token_mask(labels))})
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         method_states=method_states), metrics

  replicated = parallel.replicated_sharding(mesh)
  return jax.jit(train_step, in_shardings=(replicated, parallel.data_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def make_nll_fn(model, mesh):
  """Returns jitted `nll_fn(params, batch) -> (sum of per-token NLL, non-PAD count)` over the
  rows with `batch['mask']` True, evaluation mode, float32 (teacher-forced `test/nll`)."""
  replicated = parallel.replicated_sharding(mesh)

  def nll_fn(params, batch):
    logits = model.apply({'params': params}, batch['src'], batch['tgt_in'], train=False)
    labels = jnp.where(batch['mask'][:, None], batch['tgt_out'], tokens.PAD)
    return jnp.sum(losses.nll_loss(logits, labels)), jnp.sum(
        losses.token_mask(labels))

  return jax.jit(nll_fn, in_shardings=(replicated, parallel.data_sharding(mesh)),
                 out_shardings=(replicated, replicated))
