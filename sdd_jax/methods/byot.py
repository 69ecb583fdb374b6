"""BYOT (Zhang et al. 2019, "Be Your Own Teacher: Improve the Performance of Convolutional
Neural Networks via Self Distillation").

Auxiliary classifiers after stages 1, 2 and 3 (`models.byot.AuxiliaryHeads`) exist only in
training: they are the method's own variables (`init_variables`), kept at `params['byot']` /
`batch_stats['byot']`, which the plain network never reads and inference drops.

Loss: `CE(final) + weight * [0.9 * sum_i CE(aux_i) + 0.1 * T^2 * sum_i KL(p^T(final) ||
p^T(aux_i)) + 1e-6 * sum_i ||f_aux_i - f_final||^2]`, the final logits and features detached,
T = 3, weight 1; `||.||^2` is the squared L2 norm over the feature dimension per example.
The auxiliary CE uses the same targets as the final one (the labels, or label smoothing's /
PS-KD's). The term's sub-terms are `kl` (scaled by T^2) and `ce`, `features` (unscaled):
`combine` weighs them into the bracket above. The stage outputs and the final features come
from one forward (`forwards.stages_and_features`, kept in `ctx.stage_outputs`); with SD-Dropout
the masks act on the final features (or, at `position < 4`, on those stage outputs).
"""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from sdd_jax import losses
from sdd_jax.methods import base
from sdd_jax.methods import forwards
from sdd_jax.models import byot as byot_model


@dataclasses.dataclass(frozen=True)
class BYOT(base.Method):
  weight: float = 1.0
  temperature: float = 3.0
  ce_weight: float = 0.9
  kl_weight: float = 0.1
  feature_weight: float = 1e-6
  bottleneck: int = 0  # 0: feature width // 4 (128 for ResNet-18)

  name: ClassVar[str] = 'byot'
  label: ClassVar[str] = 'BYOT'
  paper_order: ClassVar[int] = 3
  compared: ClassVar[bool] = True
  owns_forward: ClassVar[bool] = True
  term_scales: ClassVar[dict] = {'kl': base.SCALED, 'ce': base.UNSCALED,
                                 'features': base.UNSCALED}
  summary: ClassVar[str] = 'auxiliary classifiers after stages 1-3'

  def validate(self):
    super().validate()
    for field in ('ce_weight', 'kl_weight', 'feature_weight'):
      if not getattr(self, field) >= 0:
        raise ValueError(f'{field}: must be >= 0, got {getattr(self, field)}')
    if not (isinstance(self.bottleneck, int) and self.bottleneck >= 0):
      raise ValueError(f'bottleneck: must be an integer >= 0 (0: features // 4), '
                       f'got {self.bottleneck}')

  def check_config(self, config):
    byot_model.check_model(config.model.name)

  def _heads(self, model, stage_outputs, features):
    return byot_model.create_auxiliary_heads(model, stage_outputs, features.shape[-1],
                                             self.bottleneck)

  def init_variables(self, model, key, variables, sample_images):
    stage_outputs = model.apply(variables, sample_images, False, method=model.stages)
    features = model.apply(variables, sample_images, False, method=model.features)
    return self._heads(model, stage_outputs, features).init(key, stage_outputs[:-1],
                                                            train=False)

  def forward(self, model, variables, batch, *, key, rngs):
    del key
    net, own = forwards.split_variables(variables, [self.name])
    stage_outputs, features, batch_stats = forwards.stages_and_features(
        model, net, batch['images'], rngs=rngs)
    logits = model.apply(net, features, method=model.head)
    heads = self._heads(model, stage_outputs, features)
    aux_outputs, aux_updates = heads.apply(own[self.name], stage_outputs[:-1], train=True,
                                           mutable=['batch_stats'])
    ctx = base.StepContext(model=model, variables=net, batch=batch, features=features,
                           logits=logits, stage_outputs=stage_outputs,
                           outputs={'aux_features': [f for f, _ in aux_outputs],
                                    'aux_logits': [z for _, z in aux_outputs]})
    return ctx, {**batch_stats, self.name: aux_updates['batch_stats']}

  def loss(self, ctx, key):
    del key
    sg = jax.lax.stop_gradient
    final_logits, final_features = sg(ctx.logits), sg(ctx.features)
    aux_logits, aux_features = ctx.outputs['aux_logits'], ctx.outputs['aux_features']
    ce = sum(ctx.cross_entropy(z) for z in aux_logits)
    kl = sum(losses.kl_divergence(final_logits, z, self.temperature) for z in aux_logits)
    distance = sum(jnp.sum(jnp.square(f - final_features), -1) for f in aux_features)
    term = {'kl': self.kl_weight * kl, 'ce': self.ce_weight * ce,
            'features': self.feature_weight * distance}
    metrics = {'train/byot_aux_ce': jnp.mean(ce), 'train/byot_kl': jnp.mean(kl),
               'train/byot_feature_distance': jnp.mean(distance)}
    for i, z in enumerate(aux_logits, start=1):
      metrics[f'train/byot_aux{i}_top1'] = 100 * jnp.mean(
          jnp.argmax(z, -1) == ctx.batch['labels'])
    return term, metrics
