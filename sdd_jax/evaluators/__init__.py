"""Registered evaluators, chosen by name from `config.evals`."""
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import calibration
from sdd_jax.evaluators import corruption
from sdd_jax.evaluators import fgsm
from sdd_jax.evaluators import odin
from sdd_jax.registry import Registry

EVALUATORS = Registry('evaluator')
for _cls in (accuracy.Accuracy, calibration.Calibration, corruption.Corruption, fgsm.Fgsm,
             odin.Odin):
  EVALUATORS.register(_cls.name)(_cls)

EvalContext = base.EvalContext
Predictors = base.Predictors
Skipped = base.Skipped


def create_evaluators(evals_config) -> dict:
  """{'accuracy': {...}, ...} -> {name: evaluator}, in name order."""
  return {name: EVALUATORS.get(name)(evals_config[name]) for name in sorted(evals_config or {})}
