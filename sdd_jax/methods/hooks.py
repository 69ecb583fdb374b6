"""The hooks of all configured methods, asked through their declared roles with no names: what
the trainer, the state and the step call (the contract itself: `base.py`)."""
import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax

from sdd_jax.methods import forwards
from sdd_jax.methods.base import (Method, RunInfo, StepContext, hook_key, method_key,
                                  model_rngs)

_ROLES = (('owns_forward', 'each changes what goes through the network'),
          ('sets_targets', 'both replace the cross-entropy targets'))


def batch_needs(methods: Sequence[Method]) -> Tuple[str, ...]:
  """The union of the methods' batch needs, sorted."""
  return tuple(sorted({key for method in methods for key in method.needs}))


def check_combination(methods: Sequence[Method]) -> None:
  """Raises ValueError('methods: <a> + <b>: <why>; <fix>') for methods that cannot be
  combined: two owners of the forward, two replacements of the CE targets, or a declared
  conflict."""
  names = {m.name for m in methods}
  for role, what in _ROLES:
    owners = [m for m in methods if getattr(m, role)]
    if len(owners) > 1:
      detail = '; '.join(f'{m.name}: {m.summary}' for m in owners)
      raise ValueError(f'methods: {" + ".join(m.name for m in owners)} cannot be combined: '
                       f'{what} ({detail}); keep one of them')
  for method in methods:
    for other, why in sorted(method.conflicts.items()):
      if other in names:
        raise ValueError(f'methods: {method.name} + {other} cannot be combined: {why}; keep '
                         'one of them')


def _owner(methods: Sequence[Method], role: str) -> Optional[Method]:
  owners = [m for m in methods if getattr(m, role)]
  if len(owners) > 1:
    check_combination(methods)
  return owners[0] if owners else None


def _names(methods: Sequence[Method]):
  return [m.name for m in methods]


def init_variables(methods: Sequence[Method], model, key: jax.Array, sample_images: jax.Array):
  """The initial variables (`train=False`: running statistics 0 / 1): the network's (the
  forward owner's `init_network`, default `model.init`), and each method's own
  `init_variables` at `tree[method name]` of every collection it returns."""
  owner = _owner(methods, 'owns_forward')
  network = (owner or Method()).init_network(model, key, sample_images)
  plain = network if owner is None else owner.inference_variables(network)
  own = {}
  for method in methods:
    variables = method.init_variables(model, method_key(key, method.name), plain,
                                      sample_images)
    if variables is None:
      continue
    for collection in variables:
      if method.name in network.get(collection, {}):
        raise ValueError(f'{method.name}: the network already has an entry {method.name!r} in '
                         f'{collection}; rename the module of the model')
    own[method.name] = variables
  return forwards.merge_variables(network, own)


def init_states(methods: Sequence[Method], run: RunInfo) -> Dict[str, Any]:
  """{name: initial state} of the methods that keep state."""
  return {m.name: m.init_state(run) for m in methods if m.keeps_state}


def state_partitions(methods: Sequence[Method]) -> Dict[str, Any]:
  """{name: PartitionSpec prefix} of the methods that keep state."""
  return {m.name: m.state_partition() for m in methods if m.keeps_state}


def inference_variables(methods: Sequence[Method], variables):
  """The plain network's variables (what evaluation and inference run): without any method's
  own entries or empty collections, and the forward owner's pick (DML: net0)."""
  network, _ = forwards.split_variables(variables, _names(methods))
  network = {c: tree for c, tree in network.items() if tree}
  owner = _owner(methods, 'owns_forward')
  return network if owner is None else owner.inference_variables(network)


def _on_network(fn: Callable, methods: Sequence[Method]) -> Callable:
  """`fn(model, variables, images)` given the plain network's variables of the whole tree."""
  return lambda model, variables, images: fn(model, inference_variables(methods, variables),
                                             images)


def eval_logits(methods: Sequence[Method]) -> Dict[str, Callable]:
  """{metric prefix: fn(model, variables, images) -> logits} of every method, each called with
  the whole variable tree: the forward owner's as it is (it knows its layout: DML's net0 /
  net1), any other method's on the plain network's variables (`inference_variables`)."""
  fns = {}
  for method in methods:
    for prefix, fn in method.eval_logits().items():
      fns[prefix] = fn if method.owns_forward else _on_network(fn, methods)
  return fns


def on_request(methods: Sequence[Method]) -> Tuple[str, ...]:
  """The `eval_logits` prefixes that run only where a config.evals section names them."""
  return tuple(sorted({prefix for m in methods for prefix in m.on_request}))


def prepare(methods: Sequence[Method], model, variables, batch, *, key: jax.Array, step=0,
            run: RunInfo = RunInfo(), mesh=None,
            method_states: Optional[Mapping[str, Any]] = None) -> Tuple[StepContext, Any]:
  """Runs the forward (the owner's or `forwards.plain_forward`) and the targets hook.

  The model is applied with `rngs = base.model_rngs(key)` (key: the step key); the forward
  owner sees the network's variables plus its own entries, every method its own in
  `ctx.method_variables`.

  Returns:
    (the step context, the new batch_stats: the forward's, other methods' kept as they are).
  """
  network, own = forwards.split_variables(variables, _names(methods))
  rngs = model_rngs(key)
  owner = _owner(methods, 'owns_forward')
  if owner is None:
    ctx, batch_stats = forwards.plain_forward(model, network, batch, rngs=rngs)
  else:
    seen = {owner.name: own[owner.name]} if owner.name in own else {}
    ctx, batch_stats = owner.forward(model, forwards.merge_variables(network, seen), batch,
                                     key=hook_key(key, owner.name, 'forward'), rngs=rngs)
  batch_stats = dict(batch_stats)
  for name, tree in own.items():
    if 'batch_stats' in tree and name not in batch_stats:
      batch_stats[name] = tree['batch_stats']
  extra = dict(step=step, run=run, mesh=mesh, method_states=dict(method_states or {}),
               method_variables=own)
  ctx = dataclasses.replace(
      ctx, members=tuple(dataclasses.replace(m, **extra) for m in ctx.members), **extra)
  target_owner = _owner(methods, 'sets_targets')
  if target_owner is not None:
    targets = target_owner.targets(ctx, hook_key(key, target_owner.name, 'targets'))
    ctx = dataclasses.replace(
        ctx, targets=targets,
        members=tuple(dataclasses.replace(m, targets=targets) for m in ctx.members))
  return ctx, batch_stats


def update_states(methods: Sequence[Method], ctx: StepContext) -> Dict[str, Any]:
  """{name: new state} of the methods that keep state, from this step's context."""
  return {m.name: m.update_state(ctx, ctx.method_states[m.name])
          for m in methods if m.keeps_state}
