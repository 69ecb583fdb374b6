"""CS-KD (Yun et al. 2020, "Regularizing Class-wise Predictions via Self-knowledge
Distillation").

The input pipeline gives every anchor a partner of the same class, drawn uniformly from the
class (possibly the anchor itself; `data.sampler.sample_partners`, a pure function of
(seed, epoch, position)). Term: `KL(p^T(partner) || p^T(anchor))` at T = 4, the partner
detached; the cross-entropy is taken on the anchors only. Defaults: T = 4, weight 1 (the
official code uses 3 on fine-grained data sets: set `weight=3`).

Choice (docs/methods.md): anchors and partners go through the network in training mode as ONE
batch of 2B (`forwards.joint_forward`), so BatchNorm normalises with the statistics of all 2B images
and its running averages are updated once per step; the official code runs two separate
forwards (the partners' statistics then update the running averages a second time).
With SD-Dropout the masks act on the anchors' features (or, at `position < 4`, on the anchors'
stage outputs of this joint forward).
"""
import dataclasses
from typing import ClassVar

import jax

from sdd_jax import losses
from sdd_jax.methods import base
from sdd_jax.methods import forwards


@dataclasses.dataclass(frozen=True)
class CSKD(base.Method):
  weight: float = 1.0
  temperature: float = 4.0

  name: ClassVar[str] = 'cs_kd'
  label: ClassVar[str] = 'CS-KD'
  paper_order: ClassVar[int] = 1
  compared: ClassVar[bool] = True
  owns_forward: ClassVar[bool] = True
  needs: ClassVar[tuple] = ('pair_images',)
  summary: ClassVar[str] = 'anchors + class partners as one batch'

  def forward(self, model, variables, batch, *, key, rngs):
    del key
    (anchor, partner), batch_stats = forwards.joint_forward(
        model, variables, [batch['images'], batch['pair_images']], rngs=rngs)
    ctx = base.StepContext(model=model, variables=variables, batch=batch, features=anchor[0],
                           logits=anchor[1], stage_outputs=anchor[2],
                           outputs={'pair_logits': partner[1]})
    return ctx, batch_stats

  def loss(self, ctx, key):
    del key
    partner = jax.lax.stop_gradient(ctx.outputs['pair_logits'])
    return losses.kl_divergence(partner, ctx.logits, self.temperature), {}
