"""The rules of docs/method_contract.md that a method's code must keep, checked where they are
used: a method that breaks one fails in one line (`MethodContractError`) naming the method and
the rule, not with `too many values to unpack` deep in `objective.py`.

- Roles are declared (`check_roles`, when the methods are created): a hook (`forward`,
  `targets`, `init_state`) without its role would never be called, a role without its hook
  would fail inside the step.
- `loss` returns a pair `(term, metrics)` (`check_loss`, at trace time): the term is None, one
  array of one value per example (`[batch]`, or a scalar) or `{sub-term: such an array}`, and
  the metrics are a dict.
- `loss` reads only the batch keys it declares (`images`, `labels` and its `needs`): its
  context holds those alone (`declared_context`), so a method that reads another key fails at
  once, alone or beside a method that needs that key.
"""
import dataclasses
from typing import Any, Mapping, Optional

import numpy as np

from sdd_jax.errors import UserError
from sdd_jax.methods.base import Method

DOC = 'docs/method_contract.md'
_ROLE_HOOKS = (('owns_forward', 'forward'), ('sets_targets', 'targets'),
               ('keeps_state', 'init_state'))


class MethodContractError(UserError):
  """A method's code breaks the method contract; the message names the method and the rule."""


def _where(method: Method, hook: str = 'loss') -> str:
  return f'method {method.name!r} ({type(method).__name__}.{hook})'


def check_roles(method: Method) -> None:
  """Raises MethodContractError when the hooks `method`'s class implements and the roles it
  declares differ (the caller names the method's config section)."""
  cls = type(method)
  for role, hook in _ROLE_HOOKS:
    implements = getattr(cls, hook) is not getattr(Method, hook)
    if implements and not getattr(cls, role):
      raise MethodContractError(
          f'{cls.__name__} implements {hook} but does not declare {role} = True, so it would '
          f'never be called (roles are declared, never detected: {DOC}); declare the '
          f'role or remove {hook}')
    if getattr(cls, role) and not implements:
      raise MethodContractError(
          f'{cls.__name__} declares {role} = True but does not implement {hook} ({DOC}); '
          'implement it or drop the role')


def _describe(value: Any) -> str:
  if hasattr(value, 'shape') and hasattr(value, 'dtype'):
    return f'a bare array of shape {tuple(value.shape)}'
  return f'a {type(value).__name__}'


def check_loss(method: Method, output: Any, batch_size: Optional[int]) -> None:
  """Raises MethodContractError unless `output` (what `method.loss` returned) is a pair
  (term, metrics) with a term of one value per example (`batch_size` of them) or a scalar."""
  if not (isinstance(output, tuple) and len(output) == 2):
    raise MethodContractError(
        f'{_where(method)} returned {_describe(output)}; it must return a pair (term, metrics): '
        'the unweighted per-example term [batch] (or {sub-term: [batch]}, or None) and a dict '
        f'of metrics, e.g. `return term, {{}}` ({DOC})')
  term, metrics = output
  if not isinstance(metrics, Mapping):
    raise MethodContractError(
        f'{_where(method)} returned metrics that are {_describe(metrics)}; the second item must '
        f'be a dict {{"train/<name>": scalar}} (or {{}}) ({DOC})')
  if term is None:
    return
  parts = term.items() if isinstance(term, Mapping) else [(None, term)]
  for name, value in parts:
    shape = tuple(np.shape(value))
    if shape != () and (batch_size is None or shape != (batch_size,)):
      what = 'its term' if name is None else f'its sub-term {name!r}'
      raise MethodContractError(
          f'{_where(method)} returned {what} of shape {shape}; a term is one value per example, '
          f'[batch] = ({batch_size},), or a scalar: reduce the other axes ({DOC})')


class _DeclaredBatch(dict):
  """The batch keys a method declared; reading any other raises MethodContractError."""

  def __init__(self, items, method: Method):
    super().__init__(items)
    self._method = method

  def __missing__(self, key):
    method = self._method
    raise MethodContractError(
        f'{_where(method)} reads batch key {key!r}, which {type(method).__name__}.needs does '
        f'not declare (needs = {tuple(method.needs)}); add {key!r} to needs ({DOC})')


def declared_context(method: Method, ctx):
  """`ctx` (and its members) with a batch of the keys `method` declared: images, labels and
  its needs."""
  if ctx is None:
    return None
  keys = ('images', 'labels', *method.needs)

  def view(c):
    return dataclasses.replace(
        c, batch=_DeclaredBatch({k: v for k, v in c.batch.items() if k in keys}, method))
  return dataclasses.replace(view(ctx), members=tuple(view(m) for m in ctx.members))
