"""The dispatch over a method list (sdd_jax/methods/hooks.py), with hand-made methods: unions of
needs and predictors, stateful methods only, and one owner per exclusive hook."""
import dataclasses
from typing import ClassVar

import pytest

from sdd_jax import methods
from sdd_jax.methods import base
from sdd_jax.methods import hooks


@dataclasses.dataclass(frozen=True)
class _Pairs(base.Method):
  name: ClassVar[str] = 'pairs'
  summary: ClassVar[str] = 'reads partner images'
  needs: ClassVar[tuple] = ('pair_images', 'index')
  owns_forward: ClassVar[bool] = True

  def forward(self, model, variables, batch):
    raise NotImplementedError

  def eval_logits(self):
    return {'pairs/a': len}


@dataclasses.dataclass(frozen=True)
class _Views(base.Method):
  name: ClassVar[str] = 'views'
  summary: ClassVar[str] = 'reads a second view'
  needs: ClassVar[tuple] = ('second_view', 'index')
  owns_forward: ClassVar[bool] = True

  def forward(self, model, variables, batch):
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _Counter(base.Method):
  name: ClassVar[str] = 'counter'
  conflicts: ClassVar[dict] = {'views': 'a made-up reason'}
  keeps_state: ClassVar[bool] = True

  def init_state(self, run):
    return {'count': run.num_examples}

  def state_partition(self):
    return 'spec'

  def update_state(self, ctx, state):
    return {'count': state['count'] + 1}

  def eval_logits(self):
    return {'counter/b': len}


def test_needs_are_a_sorted_union():
  assert hooks.batch_needs([_Pairs(), _Counter()]) == ('index', 'pair_images')
  assert hooks.batch_needs([]) == ()


def test_only_stateful_methods_get_state_and_partitions():
  run = base.RunInfo(num_examples=7)
  assert hooks.init_states([_Pairs(), _Counter()], run) == {'counter': {'count': 7}}
  assert hooks.state_partitions([_Pairs(), _Counter()]) == {'counter': 'spec'}


def test_eval_logits_collects_every_methods_predictors():
  assert sorted(hooks.eval_logits([_Pairs(), _Counter()])) == ['counter/b', 'pairs/a']


@pytest.mark.parametrize('methods, match', [
    ([_Pairs(), _Views()], r'methods: pairs \+ views cannot be combined: each changes what '
                           r'goes through the network \(pairs: reads partner images; views: '
                           r'reads a second view\); keep one of them'),
    ([_Counter(), _Views()], r'methods: counter \+ views cannot be combined: a made-up reason'),
])
def test_impossible_combinations_say_which_and_why(methods, match):
  with pytest.raises(ValueError, match=match):
    hooks.check_combination(methods)
  hooks.check_combination(methods[:1])  # either alone is fine


@dataclasses.dataclass(frozen=True)
class _Undeclared(base.Method):
  """Implements `forward` and `targets` without declaring the roles: never asked for them."""
  name: ClassVar[str] = 'undeclared'

  def forward(self, model, variables, batch, *, key, rngs):
    raise AssertionError('an undeclared forward must not run')

  def targets(self, ctx, key):
    raise AssertionError('undeclared targets must not be set')


def test_roles_are_declared_not_detected():
  hooks.check_combination([_Undeclared(), _Pairs()])  # one declared owner: fine
  with pytest.raises(ValueError, match='pairs \\+ views cannot be combined'):
    hooks.check_combination([_Undeclared(), _Pairs(), _Views()])
  assert hooks.init_states([_Undeclared()], base.RunInfo()) == {}


@pytest.mark.parametrize('name', methods.METHODS.names())
def test_each_registered_method_declares_the_roles_it_implements(name):
  cls = methods.METHODS.get(name)
  implements = lambda hook: getattr(cls, hook) is not getattr(base.Method, hook)
  assert cls.owns_forward == implements('forward'), 'owns_forward'
  assert cls.sets_targets == implements('targets'), 'sets_targets'
  assert cls.keeps_state == implements('init_state'), 'keeps_state'
  if not cls.owns_forward:  # the network's layout is the forward owner's business
    assert not implements('init_network') and not implements('inference_variables')
