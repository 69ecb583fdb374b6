"""A method that breaks the method contract (docs/method_contract.md) fails in one line naming
the method and the rule (`sdd_jax/methods/contract.py`), with small fake methods registered
here: what `loss` returns, the batch keys it reads, and the roles its class declares."""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import methods
from sdd_jax.classification import trainer
from sdd_jax.errors import UserError
from sdd_jax.methods import base
from sdd_jax.methods import contract
from tests import workdirs

BATCH, CLASSES = 4, 3


@dataclasses.dataclass(frozen=True)
class _Returns(base.Method):
  """`loss` returns whatever `output(ctx)` makes of the context."""
  name: ClassVar[str] = 'returns'
  term_scales: ClassVar[dict] = {'kl': base.SCALED}
  output: object = None

  def loss(self, ctx, key):
    return self.output(ctx)


def _ctx():
  labels = np.array([0, 2, 1, 0], np.int32)
  return base.StepContext(model=None, variables={},
                          batch={'images': np.zeros((BATCH, 2, 2, 3), np.float32),
                                 'labels': labels, 'index': np.arange(10, 10 + BATCH)},
                          features=np.ones((BATCH, 5), np.float32),
                          logits=np.eye(CLASSES, dtype=np.float32)[labels])


def _combine(method, ctx=None):
  ctx = ctx or _ctx()
  return jax.jit(lambda ce: methods.combine([method], ctx, jax.random.key(0), ce))(
      jnp.zeros(BATCH))


# (id, loss output as a function of ctx, expected message)
BROKEN = [
    ('bare_array', lambda ctx: jnp.zeros(BATCH),
     r"method 'returns' \(_Returns.loss\) returned a bare array of shape \(4,\); it must return "
     r'a pair \(term, metrics\)'),
    ('bare_array_of_two', lambda ctx: jnp.zeros(2),  # would unpack into two "items"
     r'returned a bare array of shape \(2,\); it must return a pair'),
    ('triple', lambda ctx: (jnp.zeros(BATCH), {}, {}), r'returned a tuple; it must return a pair'),
    ('metrics_array', lambda ctx: (jnp.zeros(BATCH), jnp.zeros(())),
     r'returned metrics that are a bare array of shape \(\); the second item must be a dict'),
    ('per_class_term', lambda ctx: (ctx.logits, {}),
     r'returned its term of shape \(4, 3\); a term is one value per example, \[batch\] = '
     r'\(4,\), or a scalar'),
    ('per_class_sub_term', lambda ctx: ({'kl': ctx.logits}, {}),
     r"returned its sub-term 'kl' of shape \(4, 3\)"),
    ('undeclared_sub_term', lambda ctx: ({'mmd': jnp.zeros(BATCH)}, {}),
     r"returns.loss returned sub-terms \['mmd'\] that _Returns.term_scales does not declare"),
    ('undeclared_batch_key', lambda ctx: (ctx.batch['index'] * 1.0, {}),
     r"method 'returns' \(_Returns.loss\) reads batch key 'index', which _Returns.needs does "
     r"not declare \(needs = \(\)\); add 'index' to needs"),
]


@pytest.mark.parametrize('output,message', [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_a_loss_that_breaks_the_contract_is_one_line_naming_the_method_and_the_rule(
    output, message):
  with pytest.raises(contract.MethodContractError, match=message) as info:
    _combine(_Returns(output=output))
  assert '\n' not in str(info.value)


@dataclasses.dataclass(frozen=True)
class _ReadsIndex(_Returns):
  needs: ClassVar[tuple] = ('index',)


def test_what_the_contract_allows_gives_the_hand_worked_total():
  """Declared `index`, a [batch] term and a scalar sub-term: total = T**2 * mean(term)."""
  index = _ReadsIndex(temperature=2.0, output=lambda ctx: (ctx.batch['index'] * 1.0, {}))
  total, _ = _combine(index)
  np.testing.assert_allclose(total, 4 * np.mean([10, 11, 12, 13]), rtol=1e-6)
  scalar = _Returns(output=lambda ctx: ({'kl': jnp.float32(3.0)}, {'train/x': 1.0}))
  total, metrics = _combine(scalar)
  np.testing.assert_allclose(total, 3.0, rtol=1e-6)
  assert metrics['train/x'] == 1.0


def test_a_batch_key_another_method_needs_is_still_undeclared(monkeypatch):
  """`index` is in the batch (another method needs it): reading it without declaring it fails
  all the same, so the method does not break when it runs alone."""
  ctx = _ctx()
  assert 'index' in ctx.batch
  with pytest.raises(contract.MethodContractError, match="reads batch key 'index'"):
    _combine(_Returns(output=lambda c: (c.batch['index'] * 1.0, {})), ctx)


@dataclasses.dataclass(frozen=True)
class _BareArray(base.Method):
  """The mistake of the issue: `loss` returns the per-example term alone."""
  name: ClassVar[str] = 'bare_array'

  def loss(self, ctx, key):
    return jnp.zeros(ctx.logits.shape[0])


def test_a_bare_array_loss_fails_training_in_one_line(monkeypatch, tmp_path):
  monkeypatch.setitem(methods.METHODS._entries, 'bare_array', _BareArray)  # pylint: disable=protected-access
  config = workdirs.tiny_config()
  config.num_epochs = 1
  config.methods.bare_array = {}
  existing = tmp_path / 'existing'
  existing.mkdir()
  (existing / 'notes.txt').write_text('a folder the user made\n')
  before = workdirs.snapshot(str(existing), folders=True)
  for workdir in (tmp_path / 'run', existing):  # found by tracing, before the claim
    with pytest.raises(UserError, match=r"method 'bare_array' \(_BareArray.loss\) returned a "
                                        r'bare array of shape \(16,\); it must return a pair'
                       ) as info:
      trainer.train_and_evaluate(config, str(workdir))
    assert '\n' not in str(info.value)
  assert not (tmp_path / 'run').exists()
  assert workdirs.snapshot(str(existing), folders=True) == before


@dataclasses.dataclass(frozen=True)
class _ForwardWithoutRole(base.Method):
  name: ClassVar[str] = 'forward_without_role'

  def forward(self, model, variables, batch, *, key, rngs):
    raise AssertionError('never called')


@dataclasses.dataclass(frozen=True)
class _StateWithoutHook(base.Method):
  name: ClassVar[str] = 'state_without_hook'
  keeps_state: ClassVar[bool] = True


@pytest.mark.parametrize('cls,message', [
    (_ForwardWithoutRole, r'methods.forward_without_role: _ForwardWithoutRole implements forward '
                          r'but does not declare owns_forward = True'),
    (_StateWithoutHook, r'methods.state_without_hook: _StateWithoutHook declares keeps_state = '
                        r'True but does not implement init_state'),
])
def test_a_hook_and_its_role_go_together(monkeypatch, cls, message):
  monkeypatch.setitem(methods.METHODS._entries, cls.name, cls)  # pylint: disable=protected-access
  with pytest.raises(contract.MethodContractError, match=message) as info:
    methods.create_methods({cls.name: {}})
  assert '\n' not in str(info.value)
