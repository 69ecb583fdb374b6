"""Registered evaluators, chosen by name."""
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.registry import Registry

EVALUATORS = Registry('evaluator')
for _cls in (accuracy.Accuracy,):
  EVALUATORS.register(_cls.name)(_cls)

Predictors = base.Predictors
