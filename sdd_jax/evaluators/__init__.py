"""Registered evaluators, chosen by `type` (default: the section key) from `config.evals`
(`sections.py`); `runner.py` runs them."""
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import calibration
from sdd_jax.evaluators import corruption
from sdd_jax.evaluators import fgsm
from sdd_jax.evaluators import odin
from sdd_jax.evaluators import sections
from sdd_jax.evaluators import temperature
from sdd_jax.registry import Registry

EVALUATORS = Registry('evaluator')
for _cls in (accuracy.Accuracy, calibration.Calibration, corruption.Corruption, fgsm.Fgsm,
             odin.Odin, temperature.Temperature):
  EVALUATORS.register(_cls.name)(_cls)

EvalContext = base.EvalContext
Predictors = base.Predictors
Skipped = base.Skipped


def create_evaluators(evals_config) -> dict:
  """{'accuracy': {...}, 'acc_train': {'type': 'accuracy', ...}} -> {key: evaluator}, in key
  order; each section builds the evaluator its `type` (default: its key) names."""
  return {key: EVALUATORS.get(sections.section_type(key, evals_config[key]))(evals_config[key],
                                                                            key=key)
          for key in sorted(evals_config or {})}


def registered_defaults() -> dict:
  """{evaluator name: its section defaults}, for every registered evaluator."""
  return {name: dict(EVALUATORS.get(name).defaults) for name in EVALUATORS.names()}
