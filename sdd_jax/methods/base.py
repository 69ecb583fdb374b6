"""The method contract, and `combine`: the total loss of paper Eq. 5.

A method is a small frozen dataclass of hyper-parameters. `loss(ctx, key)` returns the
*unweighted* per-example term `[batch]` and a dict of scalar metrics; `combine` adds
`weight * temperature**2 * mean(term)` for every configured method on top of the
cross-entropy, once, for all. `trainer.py` and `step.py` never name a method.
"""
import dataclasses
import zlib
from typing import Any, Callable, ClassVar, Dict, Sequence, Tuple

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class StepContext:
  """What a method may look at inside the (traced) train step.

  Attributes:
    model: the flax module (features / head / stages / from_stage).
    variables: {'params', 'batch_stats'}; `params` are the ones being differentiated.
    batch: the global batch (`images` [batch, H, W, C], `labels` [batch], ...).
    features: pooled features of the clean forward, [batch, D].
    logits: head(features), [batch, classes].
    train: True inside the train step.
  """
  model: Any
  variables: Dict[str, Any]
  batch: Dict[str, jax.Array]
  features: jax.Array
  logits: jax.Array
  train: bool = True

  def head_fn(self) -> Callable[[jax.Array], jax.Array]:
    """The model's own head with the current parameters: features [batch, D] -> logits."""
    return lambda x: self.model.apply(self.variables, x, method=self.model.head)


@dataclasses.dataclass(frozen=True)
class Method:
  """Base class: hyper-parameters as fields, the term as `loss`."""
  weight: float = 1.0
  temperature: float = 1.0

  name: ClassVar[str] = ''
  needs: ClassVar[Tuple[str, ...]] = ()  # batch keys beyond images / labels

  def validate(self) -> None:
    """Raises ValueError('<field>: <what is allowed>, got <value>') on a bad value."""
    if not self.weight >= 0:
      raise ValueError(f'weight: must be >= 0, got {self.weight}')
    if not self.temperature > 0:
      raise ValueError(f'temperature: must be > 0, got {self.temperature}')

  def loss(self, ctx: StepContext, key: jax.Array) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    raise NotImplementedError


def method_key(key: jax.Array, name: str) -> jax.Array:
  """A method's own key: the step key with a stable number of the method's name folded in,
  so adding a method to the registry never changes another method's masks."""
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def combine(methods: Sequence[Method], ctx: StepContext, key: jax.Array,
            base_loss: jax.Array) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Total loss `mean(base_loss) + sum_m weight_m * T_m**2 * mean(term_m)` (paper Eq. 5).

  Args:
    methods: the configured methods.
    ctx: the step context.
    key: the step key; each method gets `method_key(key, method.name)`.
    base_loss: the per-example cross-entropy, [batch].

  Returns:
    The scalar loss and metrics `train/loss`, `train/loss_ce`, `train/loss_<name>` (unweighted
    term) and whatever each method reports.
  """
  total = jnp.mean(base_loss)
  metrics = {'train/loss_ce': total}
  for method in methods:
    term, extra = method.loss(ctx, method_key(key, method.name))
    term = jnp.mean(term)
    total = total + method.weight * method.temperature ** 2 * term
    metrics[f'train/loss_{method.name}'] = term
    metrics.update(extra)
  metrics['train/loss'] = total
  return total, metrics
