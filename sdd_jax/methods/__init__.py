"""Registered self-distillation methods; a config's `methods` section names them."""
from typing import List

from sdd_jax.methods import base
from sdd_jax.methods import sd_dropout
from sdd_jax.registry import Registry

METHODS = Registry('method')
for _cls in (sd_dropout.SDDropout,):
  METHODS.register(_cls.name)(_cls)

combine = base.combine
StepContext = base.StepContext


def create_methods(methods_config) -> List[base.Method]:
  """{'sd_dropout': {...}, ...} -> validated method objects, in name order.

  Raises ValueError('methods.<name>.<field>: ...') naming the field and what is allowed.
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
  return created
