"""The hooks of all configured methods, asked with no names: what the trainer and the step call
(the contract and the hooks themselves: `base.py`)."""
import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax

from sdd_jax.methods.base import Method, RunInfo, StepContext, overrides, plain_forward


def batch_needs(methods: Sequence[Method]) -> Tuple[str, ...]:
  """The union of the methods' batch needs, sorted."""
  return tuple(sorted({key for method in methods for key in method.needs}))


def check_combination(methods: Sequence[Method]) -> None:
  """Raises ValueError('methods: <a> + <b>: <why>; <fix>') for methods that cannot be
  combined: two owners of the forward, two replacements of the CE targets, or a declared
  conflict."""
  names = {m.name for m in methods}
  for hook, what in (('forward', 'each changes what goes through the network'),
                     ('targets', 'both replace the cross-entropy targets')):
    owners = [m for m in methods if overrides(m, hook)]
    if len(owners) > 1:
      detail = '; '.join(f'{m.name}: {m.summary}' for m in owners)
      raise ValueError(f'methods: {" + ".join(m.name for m in owners)} cannot be combined: '
                       f'{what} ({detail}); keep one of them')
  for method in methods:
    for other, why in sorted(method.conflicts.items()):
      if other in names:
        raise ValueError(f'methods: {method.name} + {other} cannot be combined: {why}; keep '
                         'one of them')


def _owner(methods: Sequence[Method], hook: str) -> Optional[Method]:
  owners = [m for m in methods if overrides(m, hook)]
  if len(owners) > 1:
    check_combination(methods)
  return owners[0] if owners else None


def init_variables(methods: Sequence[Method], model, key: jax.Array, sample_images: jax.Array):
  """The initial {'params', 'batch_stats'} (`train=False`: running statistics 0 / 1)."""
  owner = _owner(methods, 'forward')
  if owner is None:
    return model.init(key, sample_images, train=False)
  return owner.init_variables(model, key, sample_images)


def init_states(methods: Sequence[Method], run: RunInfo) -> Dict[str, Any]:
  """{name: initial state} of the methods that keep state."""
  return {m.name: m.init_state(run) for m in methods if overrides(m, 'init_state')}


def state_partitions(methods: Sequence[Method]) -> Dict[str, Any]:
  """{name: PartitionSpec prefix} of the methods that keep state."""
  return {m.name: m.state_partition() for m in methods if overrides(m, 'init_state')}


def inference_variables(methods: Sequence[Method], variables):
  """The plain network's variables (what evaluation and inference run)."""
  owner = _owner(methods, 'forward')
  return variables if owner is None else owner.inference_variables(variables)


def eval_logits(methods: Sequence[Method]) -> Dict[str, Callable]:
  """{metric prefix: fn(model, variables, images) -> logits} of every method."""
  fns = {}
  for method in methods:
    fns.update(method.eval_logits())
  return fns


def prepare(methods: Sequence[Method], model, variables, batch, *, step=0,
            run: RunInfo = RunInfo(), mesh=None,
            method_states: Optional[Mapping[str, Any]] = None) -> Tuple[StepContext, Any]:
  """Runs the forward (the owner's or `plain_forward`) and the targets hook.

  Returns:
    (the step context, the new batch_stats).
  """
  owner = _owner(methods, 'forward')
  forward = plain_forward if owner is None else owner.forward
  ctx, batch_stats = forward(model, variables, batch)
  extra = dict(step=step, run=run, mesh=mesh, method_states=dict(method_states or {}))
  ctx = dataclasses.replace(
      ctx, members=tuple(dataclasses.replace(m, **extra) for m in ctx.members), **extra)
  target_owner = _owner(methods, 'targets')
  if target_owner is not None:
    ctx = dataclasses.replace(ctx, targets=target_owner.targets(ctx))
    ctx = dataclasses.replace(
        ctx, members=tuple(dataclasses.replace(m, targets=ctx.targets) for m in ctx.members))
  return ctx, batch_stats


def update_states(methods: Sequence[Method], ctx: StepContext) -> Dict[str, Any]:
  """{name: new state} of the methods that keep state, from this step's context."""
  return {m.name: m.update_state(ctx, ctx.method_states[m.name])
          for m in methods if overrides(m, 'init_state')}
