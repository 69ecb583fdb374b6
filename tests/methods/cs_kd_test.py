"""cs_kd: KL(p^T(partner) || p^T(anchor)) at T = 4 against NumPy; the partner gets no gradient;
the cross-entropy is on the anchors only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import methods
from sdd_jax.methods import base
from sdd_jax.methods.cs_kd import CSKD
from tests.methods import numpy_reference as ref


def _ctx(anchor, partner, labels):
  return base.StepContext(model=None, variables=None, batch={'labels': labels},
                          features=jnp.zeros((len(labels), 3)), logits=anchor,
                          outputs={'pair_logits': partner})


def test_term_and_gradients_against_numpy():
  rng = np.random.default_rng(0)
  anchor, partner = ref.logits(rng), ref.logits(rng)
  labels = jnp.array([0, 1, 2, 3])
  method = CSKD()
  assert (method.temperature, method.weight, method.needs) == (4.0, 1.0, ('pair_images',))

  def mean_term(a, p):
    return jnp.mean(method.loss(_ctx(a, p, labels), jax.random.key(0))[0])

  term, _ = jax.jit(lambda a, p: method.loss(_ctx(a, p, labels), None))(anchor, partner)
  np.testing.assert_allclose(term, ref.kl(partner, anchor, 4.0), rtol=1e-5, atol=1e-7)
  grad_anchor, grad_partner = jax.jit(jax.grad(mean_term, argnums=(0, 1)))(anchor, partner)
  np.testing.assert_array_equal(grad_partner, 0.0)  # the partner side is detached
  # d/dz_anchor KL(p || softmax(z / T)) = (softmax(z / T) - p) / T, / batch for the mean.
  expected = (ref.softmax(anchor, 4.0) - ref.softmax(partner, 4.0)) / 4.0 / len(anchor)
  np.testing.assert_allclose(grad_anchor, expected, rtol=1e-4, atol=1e-7)


def test_cross_entropy_is_on_the_anchors_only():
  rng = np.random.default_rng(1)
  anchor, partner = ref.logits(rng), ref.logits(rng)
  labels = np.array([4, 0, 1, 1])
  ce = methods.base_loss(_ctx(anchor, partner, labels))
  np.testing.assert_allclose(ce, ref.cross_entropy(anchor, labels), rtol=1e-5)


def test_combination_with_another_forward_owner_is_refused():
  with pytest.raises(ValueError, match=r'methods: cs_kd \+ ddgsd cannot be combined: each changes '
                                       r'what goes through the network .*; keep one of them'):
    methods.create_methods({'cs_kd': {}, 'ddgsd': {}})
