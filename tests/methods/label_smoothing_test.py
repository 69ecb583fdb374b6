"""label_smoothing: targets (1 - eps) onehot + eps / K replace the CE's labels, against NumPy."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import methods
from sdd_jax.methods import base
from sdd_jax.methods.label_smoothing import LabelSmoothing
from tests.methods import numpy_reference as ref

LABELS = np.array([2, 0, 4, 1])


def test_targets_and_cross_entropy_gradient_against_numpy():
  rng = np.random.default_rng(0)
  logits = ref.logits(rng)
  method = LabelSmoothing(epsilon=0.2)
  targets = 0.8 * np.eye(5)[LABELS] + 0.2 / 5

  def total(z):
    ctx = base.StepContext(model=None, variables=None, batch={'labels': LABELS},
                           features=jnp.zeros((4, 3)), logits=z)
    ctx = dataclasses.replace(ctx, targets=method.targets(ctx, jax.random.key(0)))
    loss, metrics = methods.combine([method], ctx, jax.random.key(0), methods.base_loss(ctx))
    return loss, (ctx.targets, metrics)

  (loss, (got_targets, metrics)), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(logits)
  np.testing.assert_allclose(got_targets, targets, rtol=1e-6)
  np.testing.assert_allclose(loss, ref.cross_entropy(logits, targets).mean(), rtol=1e-5)
  np.testing.assert_allclose(grad, (ref.softmax(logits) - targets) / 4, rtol=1e-4, atol=1e-7)
  assert 'train/loss_label_smoothing' not in metrics  # no term: it replaces the CE


@pytest.mark.parametrize('field,value,message', [
    ('epsilon', 1.0, r'epsilon: must be in \[0, 1\), got 1.0'),
    ('weight', 0.5, r'weight: label_smoothing adds no weighted term \(it replaces the '
                    r'cross-entropy targets; set epsilon\); leave it at 1.0, got 0.5'),
])
def test_validation_names_the_field(field, value, message):
  with pytest.raises(ValueError, match=message):
    LabelSmoothing(**{field: value}).validate()


def test_two_replacements_of_the_targets_are_refused():
  with pytest.raises(ValueError, match=r'methods: label_smoothing \+ ps_kd cannot be combined: '
                                       r'both replace the cross-entropy targets'):
    methods.create_methods({'ps_kd': {}, 'label_smoothing': {}})
