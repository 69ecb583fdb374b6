"""Registered self-distillation methods; a config's `methods` section names them."""
from typing import List

from sdd_jax.methods import base
from sdd_jax.methods import byot
from sdd_jax.methods import cs_kd
from sdd_jax.methods import ddgsd
from sdd_jax.methods import dml
from sdd_jax.methods import feature_dropout
from sdd_jax.methods import hooks
from sdd_jax.methods import label_smoothing
from sdd_jax.methods import ps_kd
from sdd_jax.methods import sd_dropout
from sdd_jax.registry import Registry

METHODS = Registry('method')
for _cls in (sd_dropout.SDDropout, cs_kd.CSKD, ps_kd.PSKD, ddgsd.DDGSD, byot.BYOT, dml.DML,
             label_smoothing.LabelSmoothing, feature_dropout.FeatureDropout):
  METHODS.register(_cls.name)(_cls)

StepContext = base.StepContext
RunInfo = base.RunInfo
batch_needs = hooks.batch_needs
base_loss = base.base_loss
check_combination = hooks.check_combination
combine = base.combine
eval_logits = hooks.eval_logits
inference_variables = hooks.inference_variables
init_states = hooks.init_states
init_variables = hooks.init_variables
prepare = hooks.prepare
state_partitions = hooks.state_partitions
update_states = hooks.update_states


def create_methods(methods_config) -> List[base.Method]:
  """{'sd_dropout': {...}, ...} -> validated method objects, in name order.

  Raises ValueError('methods.<name>.<field>: ...') naming the field and what is allowed, and
  ValueError('methods: <a> + <b> cannot be combined: <why>; ...') for impossible combinations.
  """
  created = []
  for name in sorted(methods_config or {}):
    cls = METHODS.get(name)
    hparams = dict(methods_config[name])
    fields = [f.name for f in base.dataclasses.fields(cls)]
    unknown = sorted(set(hparams) - set(fields))
    if unknown:
      raise ValueError(f'methods.{name}: unknown field(s) {unknown}; known: {", ".join(fields)}')
    method = cls(**hparams)
    try:
      method.validate()
    except ValueError as e:
      raise ValueError(f'methods.{name}.{e}') from None
    created.append(method)
  hooks.check_combination(created)
  return created
