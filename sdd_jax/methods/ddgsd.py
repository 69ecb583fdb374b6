"""DDGSD (Xu & Liu 2019, "Data-Distortion Guided Self-Distillation for Deep Neural Networks").

Two independently augmented views of each image (the pipeline's `images` and `second_view`,
same label) go through the network as ONE training-mode batch of 2B (`forwards.joint_forward`).
The cross-entropy is taken on both views and summed (`ctx.ce_logits`). Term: the symmetric KL
between the views at T = 3, each direction with its target detached,
`KL(sg p1 || p2) + KL(sg p2 || p1)`, plus MMD: the squared L2 distance between the batch-mean
pooled features of the two views, weight `mmd_weight = 0.005`, not multiplied by T^2.

The term has two sub-terms, weighed by `combine` alone: `kl` (symKL, scaled by T^2) and `mmd`
(`mmd_weight * MMD`, unscaled): `weight * (T^2 * symKL + mmd_weight * MMD)`, exactly the
paper's loss at the default weight 1. With SD-Dropout the masks act on the first view's
features (or, at `position < 4`, on its stage outputs of this joint forward).
"""
import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from sdd_jax import losses
from sdd_jax.methods import base
from sdd_jax.methods import forwards


@dataclasses.dataclass(frozen=True)
class DDGSD(base.Method):
  weight: float = 1.0
  temperature: float = 3.0
  mmd_weight: float = 0.005

  name: ClassVar[str] = 'ddgsd'
  label: ClassVar[str] = 'DDGSD'
  paper_order: ClassVar[int] = 2
  compared: ClassVar[bool] = True
  owns_forward: ClassVar[bool] = True
  term_scales: ClassVar[dict] = {'kl': base.SCALED, 'mmd': base.UNSCALED}
  needs: ClassVar[tuple] = ('second_view',)
  summary: ClassVar[str] = 'two augmented views as one batch'

  def validate(self):
    super().validate()
    if not self.mmd_weight >= 0:
      raise ValueError(f'mmd_weight: must be >= 0, got {self.mmd_weight}')

  def check_config(self, config):
    data = config.data
    if data.augment == 'none' or (data.augment == 'cifar' and not data.crop_padding
                                  and not data.flip):
      raise ValueError('ddgsd needs two differently augmented views, but config.data makes '
                       'them identical (augment none, or no crop padding and no flip); set '
                       "--config.data.augment=cifar with crop_padding > 0 or flip=True")

  def forward(self, model, variables, batch, *, key, rngs):
    del key
    (first, second), batch_stats = forwards.joint_forward(
        model, variables, [batch['images'], batch['second_view']], rngs=rngs)
    ctx = base.StepContext(model=model, variables=variables, batch=batch, features=first[0],
                           logits=first[1], stage_outputs=first[2],
                           ce_logits=((first[1], 1.0), (second[1], 1.0)),
                           outputs={'second_features': second[0], 'second_logits': second[1]})
    return ctx, batch_stats

  def loss(self, ctx, key):
    del key
    kl = losses.symmetric_kl(ctx.logits, ctx.outputs['second_logits'], self.temperature,
                             direction='forward')
    gap = jnp.mean(ctx.features, 0) - jnp.mean(ctx.outputs['second_features'], 0)
    mmd = jnp.sum(jnp.square(gap))
    return ({'kl': kl, 'mmd': self.mmd_weight * mmd},
            {'train/ddgsd_kl': jnp.mean(kl), 'train/ddgsd_mmd': mmd})
