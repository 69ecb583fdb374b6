"""BYOT (Zhang et al. 2019, "Be Your Own Teacher: Improve the Performance of Convolutional
Neural Networks via Self Distillation").

Auxiliary classifiers after stages 1, 2 and 3 (`models.byot.AuxiliaryHeads`) exist only in
training: their parameters live under `params['byot_aux']` / `batch_stats['byot_aux']`, which
the plain network never reads, and `inference_variables` drops them, so evaluation and
inference run the plain network.

Loss: `CE(final) + weight * [0.9 * sum_i CE(aux_i) + 0.1 * T^2 * sum_i KL(p^T(final) ||
p^T(aux_i)) + 1e-6 * sum_i ||f_aux_i - f_final||^2]`, the final logits and features detached,
T = 3, weight 1; `||.||^2` is the squared L2 norm over the feature dimension per example.
The auxiliary CE uses the same targets as the final one (the labels, or label smoothing's /
PS-KD's). So that `combine` stays the one place that weighs terms, the term returned is
`(0.9 * sum CE + 1e-6 * sum ||.||^2) / T^2 + 0.1 * sum KL`: `weight * T^2 * term` is the
bracket above. The stage outputs and the final features come from one forward
(`stages`, then `from_stage(4)`); with SD-Dropout the masks act on the final features.
"""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from sdd_jax import losses
from sdd_jax.methods import base
from sdd_jax.models import byot as byot_model

AUX = 'byot_aux'


def _stages_and_features(module, images, train):
  outputs = module.stages(images, train)
  return outputs, module.from_stage(len(outputs), outputs[-1], train)


def _split(variables):
  """-> (the plain network's variables, the auxiliary heads' variables)."""
  net = {c: {k: v for k, v in tree.items() if k != AUX} for c, tree in variables.items()}
  aux = {c: tree[AUX] for c, tree in variables.items() if AUX in tree}
  return net, aux


@dataclasses.dataclass(frozen=True)
class BYOT(base.Method):
  weight: float = 1.0
  temperature: float = 3.0
  ce_weight: float = 0.9
  kl_weight: float = 0.1
  feature_weight: float = 1e-6
  bottleneck: int = 0  # 0: feature width // 4 (128 for ResNet-18)

  name: ClassVar[str] = 'byot'
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

  def init_variables(self, model, key, sample_images):
    variables = model.init(key, sample_images, train=False)
    stage_outputs, features = model.apply(variables, sample_images, False,
                                          method=_stages_and_features)
    heads = self._heads(model, stage_outputs, features)
    aux = heads.init(jax.random.fold_in(key, 1), stage_outputs[:-1], train=False)
    return {c: {**variables[c], AUX: aux[c]} for c in variables}

  def inference_variables(self, variables):
    return _split(variables)[0]

  def forward(self, model, variables, batch):
    net, aux = _split(variables)
    (stage_outputs, features), updates = model.apply(
        net, batch['images'], True, method=_stages_and_features, mutable=['batch_stats'])
    logits = model.apply(net, features, method=model.head)
    heads = self._heads(model, stage_outputs, features)
    aux_outputs, aux_updates = heads.apply(aux, stage_outputs[:-1], train=True,
                                           mutable=['batch_stats'])
    ctx = base.StepContext(model=model, variables=net, batch=batch, features=features,
                           logits=logits,
                           outputs={'aux_features': [f for f, _ in aux_outputs],
                                    'aux_logits': [z for _, z in aux_outputs]})
    return ctx, {**updates['batch_stats'], AUX: aux_updates['batch_stats']}

  def loss(self, ctx, key):
    del key
    sg = jax.lax.stop_gradient
    final_logits, final_features = sg(ctx.logits), sg(ctx.features)
    aux_logits, aux_features = ctx.outputs['aux_logits'], ctx.outputs['aux_features']
    ce = sum(ctx.cross_entropy(z) for z in aux_logits)
    kl = sum(losses.kl_divergence(final_logits, z, self.temperature) for z in aux_logits)
    distance = sum(jnp.sum(jnp.square(f - final_features), -1) for f in aux_features)
    t2 = self.temperature ** 2
    term = (self.ce_weight * ce + self.feature_weight * distance) / t2 + self.kl_weight * kl
    metrics = {'train/byot_aux_ce': jnp.mean(ce), 'train/byot_kl': jnp.mean(kl),
               'train/byot_feature_distance': jnp.mean(distance)}
    for i, z in enumerate(aux_logits, start=1):
      metrics[f'train/byot_aux{i}_top1'] = 100 * jnp.mean(
          jnp.argmax(z, -1) == ctx.batch['labels'])
    return term, metrics
