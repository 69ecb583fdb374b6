"""Standard dropout before the head: the baseline of the SD-Dropout paper's Table 11.

The network is trained with cross-entropy on `head(m * f)`, where `f` [batch, D] are the pooled
features and `m` an inverted-dropout mask (`Bernoulli(1 - rate) / (1 - rate)`, as PyTorch's
`nn.Dropout` before the classifier); evaluation uses `head(f)` (no dropout).

`samples = K > 1` is Table 11's "standard [dagger]" column, "standard dropout that equalizes the
number of training steps compared to SD-Dropout". The paper does not say how; we read it as the
same number of dropped-out head passes, each trained, per image and step: SD-Dropout back-
propagates through K = 2 masked heads (`num_samples`), so the equal-steps baseline trains
`sum_k CE(head(m_k * f))` over K independent masks, i.e. K dropout gradient terms per image
per optimizer step (summed, as K consecutive steps would add them). K = 1 is plain dropout.

The method keeps the plain forward (it does not replace `ctx.ce_logits`); its term is the
correction `CE(head(m * f)) - CE(head(f))` [batch], which `combine` adds with
`weight * temperature**2 = 1` to the cross-entropy of the un-dropped logits. The total loss and
its gradient are then exactly those of `CE(head(m * f))` (the un-dropped CE cancels), for the
plain network and for each network of DML. `train/loss_ce` still reports the un-dropped CE;
`train/loss_ce_dropout` reports the CE that is trained (its mean over the K masks). The mask
(with K > 1: `jax.random.split` of that key into K) is drawn from the method's key
(`base.method_key(step_key, 'feature_dropout')`), so a resumed run repeats it.
"""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from sdd_jax.methods import base


def dropout_mask(key: jax.Array, shape, rate: float) -> jax.Array:
  """Inverted-dropout mask `Bernoulli(1 - rate) / (1 - rate)`, float32 `shape`; rate 0: ones."""
  if rate == 0:
    return jnp.ones(shape, jnp.float32)
  keep = 1.0 - rate
  return jax.random.bernoulli(key, keep, shape).astype(jnp.float32) / keep


@dataclasses.dataclass(frozen=True)
class FeatureDropout(base.Method):
  weight: float = 1.0
  temperature: float = 1.0
  rate: float = 0.5
  samples: int = 1

  name: ClassVar[str] = 'feature_dropout'
  label: ClassVar[str] = 'Dropout (standard)'
  baseline: ClassVar[bool] = True
  summary: ClassVar[str] = 'cross-entropy on head(dropout(features))'

  def validate(self):
    for field in ('weight', 'temperature'):
      value = getattr(self, field)
      if value != 1.0:
        raise ValueError(f'{field}: feature_dropout replaces the cross-entropy (its term is a '
                         f'correction that must enter with weight 1); leave it at 1.0, got '
                         f'{value}')
    if not 0 <= self.rate < 1:
      raise ValueError(f'rate: must be in [0, 1), got {self.rate}')
    if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
      raise ValueError(f'samples: the number of dropout masks per image and step, an integer '
                       f'>= 1 (2 = Table 11\'s equal-steps variant), got {self.samples!r}')

  def loss(self, ctx, key):
    keys = [key] if self.samples == 1 else list(jax.random.split(key, self.samples))
    head = ctx.head_fn()
    dropped_ce = [ctx.cross_entropy(head(
        ctx.features * dropout_mask(k, ctx.features.shape, self.rate).astype(ctx.features.dtype)))
                  for k in keys]
    term = sum(dropped_ce) - ctx.cross_entropy(ctx.logits)
    return term, {'train/loss_ce_dropout': jnp.mean(sum(dropped_ce)) / self.samples}
