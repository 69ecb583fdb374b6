"""Diagnostics that make a collapsing run visible: what each loss term weighs, how confident the
network is against how often it is right, how many pooled features are dead, and one warning
when a distillation term dominates a run that sits near chance.

The per-step values are computed inside the one jitted train step from what the step already
has (no second forward pass, no host round trip); like every `train/...` metric they stay on
the device until the trainer's log flush, which averages them over the steps since the last
one. Keys:

- `train/share_ce`, `train/share_<method>`: each term's weighted part of the total loss,
  `share_ce = mean(CE) / L` and `share_m = weight_m * T_m**2 * mean(term_m) / L` with
  `L = train/loss` (paper Eq. 5, as `methods.combine` weighs them). They sum to 1. A negative
  term (feature_dropout's correction `CE(dropped) - CE(clean)` can be) gives a negative share.
- `train/confidence`: mean over the batch of the max-softmax probability of the logits that
  `train/top1` is taken of, in percent like `train/top1` (confidence >> top1: over-confident;
  << top1: under-confident).
- `train/dead_features`: the fraction of the D pooled feature dimensions that are exactly 0 for
  every example of the (global) batch, `#{d : f[i, d] == 0 for all i} / D`, `f` [batch, D].
  After the last ReLU and the average pool, `f[i, d] == 0` means the ReLU zeroed unit d at every
  position of example i; 0 for the whole batch means the unit is dead on this batch.
- `train/collapse_warning`: 1.0, once per run (process), at the end of the first epoch whose
  mean training top-1 is near chance while a distillation term dominates (`collapse_message`).

Which network: the primary examples and network, those of `train/top1` (`StepContext.features`
and `.logits`): network 0 for DML (the headline one), the final classifier for BYOT, the
anchors for CS-KD, the first view for DDGSD.
"""
import logging
from typing import Dict, Mapping, Optional

import jax
import jax.numpy as jnp

SHARE = 'train/share_'
WARNING_KEY = 'train/collapse_warning'


def term_shares(weighted: Mapping[str, jax.Array], total: jax.Array) -> Dict[str, jax.Array]:
  """`{'train/share_<name>': weighted[name] / total}`.

  Args:
    weighted: each term's weighted scalar contribution to the loss by name (`ce` for the
      cross-entropy); `total` is their sum.
    total: the scalar loss. A total of exactly 0 gives shares 0 (not NaN).
  """
  safe = jnp.where(total == 0, 1.0, total)
  return {f'{SHARE}{name}': jnp.where(total == 0, 0.0, value / safe)
          for name, value in weighted.items()}


def confidence(logits: jax.Array) -> jax.Array:
  """Mean max-softmax probability of `logits` [batch, classes], in percent, float32."""
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  return 100 * jnp.mean(jnp.max(probs, axis=-1))


def dead_feature_fraction(features: jax.Array) -> jax.Array:
  """Fraction of the columns of `features` [batch, D] that are exactly 0 in every row."""
  dead = jnp.all(features == 0, axis=0)
  return jnp.mean(dead.astype(jnp.float32))


def top1(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Percent of the rows of `logits` [batch, classes] whose argmax is the label [batch]."""
  return 100 * jnp.mean(jnp.argmax(logits, -1) == labels)


def batch_metrics(logits: jax.Array, features: jax.Array,
                  labels: jax.Array) -> Dict[str, jax.Array]:
  """`train/top1`, `train/confidence` and `train/dead_features` of one step, from the logits
  [batch, classes], pooled features [batch, D] and labels [batch] (gradients do not flow)."""
  logits, features = jax.lax.stop_gradient(logits), jax.lax.stop_gradient(features)
  return {'train/top1': top1(logits, labels), 'train/confidence': confidence(logits),
          'train/dead_features': dead_feature_fraction(features)}


def collapse_message(epoch: int, means: Mapping[str, float], num_classes: int, *,
                     chance_factor: float = 1.5, dominant_share: float = 0.5) -> Optional[str]:
  """The warning for an epoch that looks collapsed, or None.

  Near chance: the epoch's mean `train/top1` (percent) is below `chance_factor * 100 /
  num_classes`, i.e. less than half again above chance (15% for 10 classes, 1.5% for 100):
  a network that learns anything clears it within an epoch, one that the distillation term
  pins to uniform predictions does not. Dominates: the largest epoch-mean share of a term
  other than the cross-entropy is above `dominant_share` (more than the CE and every other
  term together). Every non-CE term counts; feature_dropout's (a CE correction, about 0 at
  chance) and BYOT's (mostly its auxiliary classifiers' CE) included.
  """
  top1 = means.get('train/top1')
  terms = {k[len(SHARE):]: v for k, v in means.items()
           if k.startswith(SHARE) and k != f'{SHARE}ce'}
  if top1 is None or not terms:
    return None
  chance = 100.0 / num_classes
  name, share = max(terms.items(), key=lambda item: item[1])
  if top1 >= chance_factor * chance or share <= dominant_share:
    return None
  return (f'collapse? epoch {epoch}: training top-1 {top1:.3g}% is near chance '
          f'({chance:.3g}% for {num_classes} classes) while the {name} term is '
          f'{100 * share:.3g}% of the loss (CE {100 * means.get(f"{SHARE}ce", 0.0):.3g}%); '
          f'the term may be overwhelming the cross-entropy: try a smaller '
          f'methods.{name}.weight')


class CollapseWatch:
  """Epoch means of the flushed train metrics, and the collapse warning once per run.

  `observe(step, means)` takes the means the trainer flushed at `step` (over the steps since the
  previous flush, or since `start_step`), weighs them by their number of steps, and at the end
  of an epoch (`step % steps_per_epoch == 0`) asks `collapse_message`. The first time it gives
  a message, the message is logged as a warning and `{WARNING_KEY: 1.0}` is returned (for the
  metrics and the progress line); otherwise `{}`. An epoch resumed in the middle is judged on
  the steps this process saw.
  """

  def __init__(self, num_classes: int, steps_per_epoch: int, start_step: int = 0, **rule):
    self._num_classes, self._steps_per_epoch, self._rule = num_classes, steps_per_epoch, rule
    self._last_step, self._sums, self._count = start_step, {}, 0
    self.fired = False

  def observe(self, step: int, means: Mapping[str, float]) -> Dict[str, float]:
    steps = step - self._last_step
    self._last_step = step
    if steps <= 0 or not means:
      return {}
    for key, value in means.items():
      self._sums[key] = self._sums.get(key, 0.0) + steps * value
    self._count += steps
    if step % self._steps_per_epoch:
      return {}
    epoch_means = {k: v / self._count for k, v in self._sums.items()}
    self._sums, self._count = {}, 0
    if self.fired:
      return {}
    message = collapse_message(step // self._steps_per_epoch, epoch_means, self._num_classes,
                               **self._rule)
    if message is None:
      return {}
    self.fired = True
    logging.warning(message)
    return {WARNING_KEY: 1.0}
