"""Registered self-distillation methods; a config's `methods` section names them.

The contract a method meets (and a worked example) is `docs/method_contract.md`. Method facts
live on each method's class and are read here, for configs (`defaults`) and reports (`labels`,
`paper_order`, `compared`, `baselines`): no other module lists methods.
"""
import dataclasses
from typing import Any, Dict, List, Tuple

from sdd_jax.methods import base
from sdd_jax.methods import byot
from sdd_jax.methods import contract
from sdd_jax.methods import cs_kd
from sdd_jax.methods import ddgsd
from sdd_jax.methods import dml
from sdd_jax.methods import feature_dropout
from sdd_jax.methods import forwards
from sdd_jax.methods import hooks
from sdd_jax.methods import label_smoothing
from sdd_jax.methods import objective
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
base_loss = objective.base_loss
check_combination = hooks.check_combination
combine = objective.combine
eval_logits = hooks.eval_logits
inference_variables = hooks.inference_variables
init_states = hooks.init_states
init_variables = hooks.init_variables
on_request = hooks.on_request
prepare = hooks.prepare
state_partitions = hooks.state_partitions
update_states = hooks.update_states
plain_forward = forwards.plain_forward
joint_forward = forwards.joint_forward


def defaults(name: str, combined: bool = False) -> Dict[str, Any]:
  """The paper defaults of method `name` as a config section: its dataclass defaults (without
  `weight` / `temperature` for a method without a term); `combined=True` puts the method's
  `combined_defaults` on top (its setting beside another method: SD-Dropout's weight 0.1)."""
  cls = METHODS.get(name)
  fixed = () if cls.has_term else ('weight', 'temperature')
  values = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in fixed}
  return {**values, **(cls.combined_defaults if combined else {})}


def resolve_config(config: Dict[str, Any]) -> Dict[str, Any]:
  """The config dict `config` (its JSON form) with each registered method's section resolved:
  the method's config defaults (`defaults(name)`) under the fields the config sets, i.e. every
  hyper-parameter `create_methods` builds it with. `config.json` records this form, so
  `{'sd_dropout': {}}` and `{'sd_dropout': defaults('sd_dropout')}` are one config. A `model`
  section without `bn_group` (a config.json written before the field existed) gets its default,
  0, so such a run still resumes. Other sections and unregistered names stay as they are."""
  model = config.get('model')
  if isinstance(model, dict) and 'bn_group' not in model:
    config = {**config, 'model': {**model, 'bn_group': 0}}
  sections = config.get('methods')
  if not isinstance(sections, dict):
    return config
  return {**config, 'methods': {
      name: {**defaults(name), **section} if name in METHODS and isinstance(section, dict)
      else section for name, section in sections.items()}}


def _by_paper_order(names) -> Tuple[str, ...]:
  order = lambda n: (METHODS.get(n).paper_order is None, METHODS.get(n).paper_order or 0, n)
  return tuple(sorted(names, key=order))


def labels() -> Dict[str, str]:
  """{name: display name} of every method ('cs_kd': 'CS-KD')."""
  return {name: METHODS.get(name).label or name for name in METHODS.names()}


def paper_order() -> Tuple[str, ...]:
  """The methods with a place in the paper's Table 1, in that order."""
  return _by_paper_order(n for n in METHODS.names() if METHODS.get(n).paper_order is not None)


def compared() -> Tuple[str, ...]:
  """The self-KD methods SD-Dropout is combined with (Tables 1-2): paper order, then by name."""
  return _by_paper_order(n for n in METHODS.names() if METHODS.get(n).compared)


def baselines() -> Tuple[str, ...]:
  """Ablation baselines that are not self-KD methods (Table 11's standard dropout)."""
  return tuple(n for n in METHODS.names() if METHODS.get(n).baseline)


def create_methods(methods_config) -> List[base.Method]:
  """{'sd_dropout': {...}, ...} -> validated method objects, in name order.

  Raises ValueError('methods.<name>.<field>: ...') naming the field and what is allowed, and
  ValueError('methods: <a> + <b> cannot be combined: <why>; ...') for impossible combinations,
  and contract.MethodContractError('methods.<name>: ...') for a hook without its declared role.
  """
  created = []
  for name in sorted(methods_config or {}):
    cls = METHODS.get(name)
    hparams = dict(methods_config[name])
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(hparams) - set(fields))
    if unknown:
      raise ValueError(f'methods.{name}: unknown field(s) {unknown}; known: {", ".join(fields)}')
    method = cls(**hparams)
    try:
      method.validate()
    except ValueError as e:
      raise ValueError(f'methods.{name}.{e}') from None
    try:
      contract.check_roles(method)
    except contract.MethodContractError as e:
      raise contract.MethodContractError(f'methods.{name}: {e}') from None
    created.append(method)
  hooks.check_combination(created)
  return created
