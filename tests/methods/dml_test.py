"""dml: mutual KL with the peer detached, CE averaged over the two networks, against NumPy;
other methods run per network; evaluation's net1 and ensemble logits on a fixed-logit fake."""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import methods
from sdd_jax.methods import base
from sdd_jax.methods import dml
from tests.methods import numpy_reference as ref

LABELS = np.array([1, 0, 4, 2])


def _ctx(z0, z1):
  members = tuple(base.StepContext(model=None, variables=None, batch={'labels': LABELS},
                                   features=jnp.zeros((4, 3)), logits=z) for z in (z0, z1))
  return dataclasses.replace(members[0], members=members,
                             ce_logits=((z0, 0.5), (z1, 0.5)))


def test_term_ce_and_gradients_against_numpy():
  rng = np.random.default_rng(0)
  z0, z1 = ref.logits(rng), ref.logits(rng)
  method = dml.DML()
  term, _ = jax.jit(lambda a, b: method.loss(_ctx(a, b), None))(z0, z1)
  np.testing.assert_allclose(term, ref.kl(z1, z0, 3.0) + ref.kl(z0, z1, 3.0), rtol=1e-5)
  np.testing.assert_allclose(methods.base_loss(_ctx(z0, z1)),
                             0.5 * ref.cross_entropy(z0, LABELS)
                             + 0.5 * ref.cross_entropy(z1, LABELS), rtol=1e-5)
  g0, g1 = jax.jit(jax.grad(lambda a, b: jnp.mean(method.loss(_ctx(a, b), None)[0]),
                            argnums=(0, 1)))(z0, z1)
  p0, p1 = ref.softmax(z0, 3.0), ref.softmax(z1, 3.0)
  # Each network only gets the gradient of KL(sg peer || self): (p_self - p_peer) / T / B.
  np.testing.assert_allclose(g0, (p0 - p1) / 3.0 / 4, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(g1, (p1 - p0) / 3.0 / 4, rtol=1e-4, atol=1e-7)


@dataclasses.dataclass(frozen=True)
class _FirstLogit(base.Method):
  """A fake term: each example's first logit, from whichever network it is given."""
  name: ClassVar[str] = 'first_logit'

  def loss(self, ctx, key):
    return ctx.logits[:, 0], {'train/first_logit_key': jax.random.uniform(key)}


def test_other_methods_run_once_per_network_and_are_averaged():
  rng = np.random.default_rng(1)
  z0, z1 = ref.logits(rng), ref.logits(rng)
  key = jax.random.key(3)
  _, metrics = methods.combine([_FirstLogit()], _ctx(z0, z1), key, jnp.zeros(4))
  np.testing.assert_allclose(metrics['train/loss_first_logit'],
                             (z0[:, 0].mean() + z1[:, 0].mean()) / 2, rtol=1e-6)
  own = base.method_key(key, 'first_logit')  # network 1 draws from its own key
  np.testing.assert_allclose(metrics['train/first_logit_key'],
                             (jax.random.uniform(own)
                              + jax.random.uniform(jax.random.fold_in(own, 1))) / 2, rtol=1e-6)


class _FixedLogits:
  """A fake model whose eval logits are its `params['logits']`."""

  def apply(self, variables, images, train):
    assert not train
    return variables['params']['logits']


def test_evaluation_reports_net1_and_the_averaged_probability_ensemble():
  rng = np.random.default_rng(2)
  z0, z1 = ref.logits(rng), ref.logits(rng)
  variables = {'params': {'net0': {'logits': z0}, 'net1': {'logits': z1}},
               'batch_stats': {'net0': {}, 'net1': {}}}
  method = dml.DML()
  assert methods.inference_variables([method], variables)['params']['logits'] is z0
  fns = methods.eval_logits([method])
  assert sorted(fns) == ['dml/ensemble', 'dml/net1']
  np.testing.assert_array_equal(fns['dml/net1'](_FixedLogits(), variables, None), z1)
  ensemble = fns['dml/ensemble'](_FixedLogits(), variables, None)
  np.testing.assert_allclose(np.exp(ensemble), (ref.softmax(z0) + ref.softmax(z1)) / 2,
                             rtol=1e-5)


def test_impossible_combinations_say_which_and_why():
  with pytest.raises(ValueError, match=r'methods: byot \+ dml cannot be combined: each changes '
                                       r'what goes through the network \(byot: auxiliary '
                                       r'classifiers after stages 1-3; dml: two networks\)'):
    methods.create_methods({'dml': {}, 'byot': {}})
  with pytest.raises(ValueError, match=r"methods: ps_kd \+ dml cannot be combined: ps_kd's "
                                       r'table holds one network.s past predictions and dml '
                                       r'trains two; keep one of them'):
    methods.create_methods({'dml': {}, 'ps_kd': {}})
