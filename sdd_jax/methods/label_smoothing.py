"""Label smoothing (Szegedy et al. 2016): the cross-entropy targets become
`(1 - epsilon) * onehot(y) + epsilon / K`, epsilon = 0.1, K classes. It replaces the plain
cross-entropy (on every set of logits the CE is taken of: both DDGSD views, both DML networks,
BYOT's auxiliary classifiers) and adds no term, so `weight` and `temperature` stay 1.
"""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from sdd_jax.methods import base


@dataclasses.dataclass(frozen=True)
class LabelSmoothing(base.Method):
  epsilon: float = 0.1

  name: ClassVar[str] = 'label_smoothing'
  label: ClassVar[str] = 'LS'
  paper_order: ClassVar[int] = 5
  compared: ClassVar[bool] = True
  has_term: ClassVar[bool] = False
  sets_targets: ClassVar[bool] = True
  summary: ClassVar[str] = 'uniform mass epsilon / K'

  def validate(self):
    super().validate()
    if not 0 <= self.epsilon < 1:
      raise ValueError(f'epsilon: must be in [0, 1), got {self.epsilon}')
    base.check_no_term(self, 'it replaces the cross-entropy targets; set epsilon')

  def targets(self, ctx, key):
    del key
    classes = ctx.logits.shape[-1]
    onehot = jax.nn.one_hot(ctx.batch['labels'], classes, dtype=jnp.float32)
    return (1 - self.epsilon) * onehot + self.epsilon / classes

  def loss(self, ctx, key):
    return None, {}
