"""combine: CE + sum weight * T**2 * mean(term) (paper Eq. 5), on hand-made numbers."""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import methods
from sdd_jax.methods import base


@dataclasses.dataclass(frozen=True)
class _Fixed(base.Method):
  """A fake method whose term is fixed: [1, 3] -> mean 2."""
  name: ClassVar[str] = 'fixed'

  def loss(self, ctx, key):
    return jnp.array([1.0, 3.0]), {'train/fixed_extra': jnp.array(7.0)}


@dataclasses.dataclass(frozen=True)
class _KeyEcho(base.Method):
  """A fake method whose term is a uniform draw from its key."""
  name: ClassVar[str] = 'echo'

  def loss(self, ctx, key):
    return jax.random.uniform(key, (2,)), {}


def test_combine_adds_weight_times_temperature_squared_times_mean_term():
  ce = jnp.array([0.5, 1.5])  # mean 1.0
  total, metrics = methods.combine([_Fixed(weight=0.1, temperature=3.0)], None,
                                jax.random.key(0), ce)
  # 1.0 + 0.1 * 9 * 2.0 = 2.8
  np.testing.assert_allclose(total, 2.8, rtol=1e-6)
  np.testing.assert_allclose(metrics['train/loss'], 2.8, rtol=1e-6)
  np.testing.assert_allclose(metrics['train/loss_ce'], 1.0)
  np.testing.assert_allclose(metrics['train/loss_fixed'], 2.0)
  assert metrics['train/fixed_extra'] == 7.0


def test_combine_without_methods_is_mean_cross_entropy():
  total, metrics = methods.combine([], None, jax.random.key(0), jnp.array([1.0, 2.0, 6.0]))
  np.testing.assert_allclose(total, 3.0)
  assert set(metrics) == {'train/loss', 'train/loss_ce', 'train/share_ce'}


def test_each_method_draws_from_its_own_stable_key():
  key = jax.random.key(3)
  _, m1 = methods.combine([_KeyEcho()], None, key, jnp.zeros(2))
  _, m2 = methods.combine([_Fixed(), _KeyEcho()], None, key, jnp.zeros(2))
  # Adding another method does not change this method's randomness.
  np.testing.assert_array_equal(m1['train/loss_echo'], m2['train/loss_echo'])
  expected = jnp.mean(jax.random.uniform(base.method_key(key, 'echo'), (2,)))
  np.testing.assert_array_equal(m1['train/loss_echo'], expected)
  assert not np.array_equal(jax.random.key_data(base.method_key(key, 'echo')),
                            jax.random.key_data(base.method_key(key, 'fixed')))


def test_create_methods_names_the_field_and_the_fix():
  with pytest.raises(ValueError, match=r"unknown method 'sd_dropuot'; known methods: .*sd_dropout"):
    methods.create_methods({'sd_dropuot': {}})
  with pytest.raises(ValueError, match=r"methods.sd_dropout: unknown field\(s\) \['rat'\]; known: "
                                       r"weight, temperature, rate"):
    methods.create_methods({'sd_dropout': {'rat': 0.5}})
  with pytest.raises(ValueError, match=r'methods.sd_dropout.rate: must be in \[0, 1\), got 1.0'):
    methods.create_methods({'sd_dropout': {'rate': 1.0}})
  created = methods.create_methods({'sd_dropout': {'rate': 0.3}})
  assert created[0].rate == 0.3 and created[0].temperature == 3.0


@pytest.mark.parametrize('name', methods.METHODS.names())
def test_every_registered_method_has_paper_defaults_that_validate(name):
  method = methods.METHODS.get(name)()
  method.validate()
  assert method.name == name and method.temperature > 0


@dataclasses.dataclass(frozen=True)
class _Split(base.Method):
  """A fake method with a T**2-scaled and an unscaled sub-term."""
  name: ClassVar[str] = 'split'
  term_scales: ClassVar[dict] = {'kl': base.SCALED, 'dist': base.UNSCALED}

  def loss(self, ctx, key):
    return {'kl': jnp.array([1.0, 3.0]), 'dist': jnp.array([4.0, 8.0])}, {}


def test_combine_scales_each_declared_sub_term_then_weighs_the_sum():
  ce = jnp.array([0.5, 1.5])  # mean 1.0
  total, metrics = jax.jit(lambda c: methods.combine(
      [_Split(weight=0.5, temperature=2.0)], None, jax.random.key(0), c))(ce)
  # 1.0 + 0.5 * (2**2 * mean(kl) = 8 + mean(dist) = 6) = 8.0
  np.testing.assert_allclose(total, 8.0, rtol=1e-6)
  # the term in units of T**2, so that weight * T**2 * train/loss_split is its contribution
  np.testing.assert_allclose(metrics['train/loss_split'], 14.0 / 4, rtol=1e-6)
  np.testing.assert_allclose(metrics['train/share_split'], 7.0 / 8.0, rtol=1e-6)


def test_an_undeclared_sub_term_is_refused_by_name():
  undeclared = dataclasses.replace(_Split())
  object.__setattr__(undeclared, 'loss', lambda ctx, key: ({'kl': jnp.ones(2),
                                                             'mmd': jnp.ones(2)}, {}))
  with pytest.raises(ValueError, match=r"split.loss returned sub-terms \['mmd'\] that "
                                       r"_Split.term_scales does not declare"):
    methods.combine([undeclared], None, jax.random.key(0), jnp.zeros(2))


def test_method_facts_come_from_the_method_classes():
  """The paper's values (SD-Dropout §4.1.1-4.1.2, Table 1's columns), written out here."""
  assert methods.defaults('sd_dropout') == dict(weight=1.0, temperature=3.0, rate=0.5,
                                                direction='both', num_samples=2, position=4,
                                                eval_masks=8)
  assert methods.defaults('sd_dropout', combined=True)['weight'] == 0.1
  assert methods.defaults('cs_kd') == dict(weight=1.0, temperature=4.0)
  assert methods.defaults('ps_kd') == dict(alpha=0.8)  # no term: no weight / temperature
  assert methods.defaults('ddgsd') == dict(weight=1.0, temperature=3.0, mmd_weight=0.005)
  assert methods.paper_order() == ('cs_kd', 'ddgsd', 'byot', 'dml', 'label_smoothing')
  assert methods.compared() == ('cs_kd', 'ddgsd', 'byot', 'dml', 'label_smoothing', 'ps_kd')
  assert methods.baselines() == ('feature_dropout',)
  assert methods.labels()['cs_kd'] == 'CS-KD' and methods.labels()['label_smoothing'] == 'LS'
