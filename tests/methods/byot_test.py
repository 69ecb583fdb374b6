"""byot: the auxiliary-classifier loss against NumPy, which inputs get gradient; the auxiliary
heads' parameters live beside the plain network's and inference drops them."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import methods
from sdd_jax import models
from sdd_jax.train import state as state_lib
from sdd_jax.methods import base
from sdd_jax.methods.byot import BYOT
from tests.methods import numpy_reference as ref

LABELS = np.array([1, 1, 0, 3])


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  final = ref.logits(rng)
  aux = [ref.logits(rng) for _ in range(3)]
  features = [rng.normal(size=(4, 6)).astype(np.float32) for _ in range(4)]
  return final, aux, features[0], features[1:]


def _ctx(final, aux, final_features, aux_features):
  return base.StepContext(model=None, variables=None, batch={'labels': LABELS},
                          features=final_features, logits=final,
                          outputs={'aux_logits': list(aux), 'aux_features': list(aux_features)})


def test_weighted_loss_against_numpy():
  final, aux, f, aux_f = _inputs()
  method = BYOT()

  def total_fn(*args):
    ctx = _ctx(*args)
    return methods.combine([method], ctx, jax.random.key(0), methods.base_loss(ctx))

  total, metrics = jax.jit(total_fn)(final, aux, f, aux_f)
  ce = sum(ref.cross_entropy(z, LABELS) for z in aux)
  kl = sum(ref.kl(final, z, 3.0) for z in aux)
  distance = sum(np.sum((g.astype(np.float64) - f) ** 2, -1) for g in aux_f)
  expected = (ref.cross_entropy(final, LABELS)
              + 0.9 * ce + 0.1 * 9.0 * kl + 1e-6 * distance).mean()
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics['train/byot_kl'], kl.mean(), rtol=1e-5)


def test_final_logits_and_features_are_detached():
  final, aux, f, aux_f = _inputs(1)
  method = BYOT()

  def mean_term(*args):  # the term in units of T^2, as combine reports it
    ctx = _ctx(*args)
    return methods.combine([method], ctx, jax.random.key(0), jnp.zeros(4))[1]['train/loss_byot']

  g_final, g_aux, g_f, g_aux_f = jax.jit(jax.grad(mean_term, argnums=(0, 1, 2, 3)))(
      final, aux, f, aux_f)
  np.testing.assert_array_equal(g_final, 0.0)
  np.testing.assert_array_equal(g_f, 0.0)
  for z, g in zip(aux, g_aux):
    # d/dz [0.9 CE(z) / T^2 + 0.1 KL(p^T(final) || p^T(z))] = 0.9 (p - y) / T^2 + 0.1 (q - p^T) / T
    expected = (0.9 * (ref.softmax(z) - np.eye(5)[LABELS]) / 9.0
                + 0.1 * (ref.softmax(z, 3.0) - ref.softmax(final, 3.0)) / 3.0) / 4
    np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-7)
  for g, h in zip(aux_f, g_aux_f):
    np.testing.assert_allclose(h, 1e-6 * 2 * (g - f) / 9.0 / 4, rtol=1e-4, atol=1e-12)


def test_auxiliary_heads_live_beside_the_network_and_inference_drops_them():
  model = models.get_model('resnet18_cifar', num_classes=10, width=4, stage_sizes=(1, 1, 1, 1))
  sample = jnp.zeros((1, 32, 32, 3))
  init = functools.partial(methods.init_variables, [BYOT()], model)
  shapes = jax.eval_shape(init, state_lib.init_key(0), sample)  # tracing only: no compile
  plain = jax.eval_shape(functools.partial(model.init, train=False), state_lib.init_key(0),
                         sample)
  aux = shapes['params']['byot']  # the method's own variables, under its name
  assert sorted(aux) == ['head1', 'head2', 'head3'] and 'byot' in shapes['batch_stats']
  # k x k stride-k convs: stage sides 32, 16, 8 reach the last stage's 4 with k = 8, 4, 2;
  # bottleneck D // 4 = 8 channels (128 for ResNet-18's D = 512); the last conv has D = 32.
  for head, k, channels in (('head1', 8, 4), ('head2', 4, 8), ('head3', 2, 16)):
    assert aux[head]['reduce_conv']['kernel'].shape == (1, 1, channels, 8)
    assert aux[head]['pool_conv']['kernel'].shape == (k, k, 8, 8)
    assert aux[head]['expand_conv']['kernel'].shape == (1, 1, 8, 32)
  inference = methods.inference_variables([BYOT()], shapes)
  assert jax.tree.structure(inference) == jax.tree.structure(plain)
  with pytest.raises(ValueError, match=r"byot: stage 1 output is 36x36, not a multiple of the "
                                       r"last stage's 5x5"):
    jax.eval_shape(init, state_lib.init_key(0), jnp.zeros((1, 36, 36, 3)))
