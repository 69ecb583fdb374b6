"""feature_dropout (paper Table 11's standard dropout) against NumPy: the trained loss is the CE
of head(mask * features), with the mask from the method's key; nothing changes at evaluation."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import losses
from sdd_jax import methods
from sdd_jax.methods import base
from sdd_jax.methods.feature_dropout import FeatureDropout
from tests.methods import tiny_net

NUM_CLASSES, BATCH = 5, 6


@functools.lru_cache()
def _setup():
  model = tiny_net.TinyNet(num_classes=NUM_CLASSES)
  images = jax.random.normal(jax.random.key(1), (BATCH, 8, 8, 3))
  labels = jnp.arange(BATCH, dtype=jnp.int32) % NUM_CLASSES
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), images)
  return model, variables, {'images': images, 'labels': labels}


def _total_loss(rate, params, key, samples=1):
  """The step's loss (prepare -> base_loss -> combine) with feature_dropout configured."""
  model, variables, batch = _setup()
  chosen = methods.create_methods({'feature_dropout': {'rate': rate, 'samples': samples}})
  variables = {'params': params, 'batch_stats': variables['batch_stats']}
  ctx, _ = methods.prepare(chosen, model, variables, batch, key=key)
  total, metrics = methods.combine(chosen, ctx, key, methods.base_loss(ctx))
  return total, (metrics, ctx.features)


def _numpy_ce(logits, labels):
  logits = logits - logits.max(-1, keepdims=True)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return -log_probs[np.arange(len(labels)), labels]


def test_rate_zero_is_plain_cross_entropy():
  model, variables, batch = _setup()
  total, (metrics, features) = jax.jit(functools.partial(_total_loss, 0.0))(
      variables['params'], jax.random.key(3))
  plain = jnp.mean(losses.cross_entropy(model.apply(variables, features, method=model.head),
                                        batch['labels']))
  np.testing.assert_allclose(total, plain, rtol=1e-6)
  np.testing.assert_allclose(metrics['train/loss_feature_dropout'], 0.0, atol=1e-6)


@pytest.mark.parametrize('rate', [0.3, 0.5])
def test_loss_is_numpy_cross_entropy_of_head_of_masked_features(rate):
  _, variables, batch = _setup()
  key = jax.random.key(7)
  total, (metrics, features) = jax.jit(functools.partial(_total_loss, rate))(
      variables['params'], key)
  keep = 1.0 - rate
  mask = np.asarray(jax.random.bernoulli(base.method_key(key, 'feature_dropout'), keep,
                                         features.shape), np.float64) / keep
  assert 0 < (mask == 0).mean() < 1
  dense = variables['params']['classifier']['output']  # the default head: one Dense layer
  w, b = np.asarray(dense['kernel'], np.float64), np.asarray(dense['bias'], np.float64)
  logits = (mask * np.asarray(features, np.float64)) @ w + b
  expected = _numpy_ce(logits, np.asarray(batch['labels'])).mean()
  np.testing.assert_allclose(total, expected, rtol=2e-5)
  np.testing.assert_allclose(metrics['train/loss_ce_dropout'], expected, rtol=2e-5)


def test_equal_steps_variant_sums_the_cross_entropy_of_k_masks():
  """samples=2 (Table 11's standard-dagger): sum over two masks from the split method key of
  NumPy's CE(head(mask_k * f)), batch-averaged; the logged CE is their mean."""
  _, variables, batch = _setup()
  key, rate = jax.random.key(5), 0.5
  total, (metrics, features) = jax.jit(functools.partial(_total_loss, rate, samples=2))(
      variables['params'], key)
  dense = variables['params']['classifier']['output']
  w, b = np.asarray(dense['kernel'], np.float64), np.asarray(dense['bias'], np.float64)
  ces = []
  for k in jax.random.split(base.method_key(key, 'feature_dropout'), 2):
    mask = np.asarray(jax.random.bernoulli(k, 1 - rate, features.shape), np.float64) / (1 - rate)
    ces.append(_numpy_ce((mask * np.asarray(features, np.float64)) @ w + b,
                         np.asarray(batch['labels'])).mean())
  assert abs(ces[0] - ces[1]) > 1e-3  # two different masks
  np.testing.assert_allclose(total, ces[0] + ces[1], rtol=2e-5)
  np.testing.assert_allclose(metrics['train/loss_ce_dropout'], (ces[0] + ces[1]) / 2, rtol=2e-5)


def test_gradient_is_that_of_the_dropped_cross_entropy():
  """The un-dropped CE cancels in the gradient as well: the head's gradient is NumPy's
  d CE(mask * f @ w + b) / d(w, b)."""
  _, variables, batch = _setup()
  key, rate = jax.random.key(11), 0.5
  grads, (_, features) = jax.jit(jax.grad(functools.partial(_total_loss, rate), has_aux=True))(
      variables['params'], key)
  mask = np.asarray(jax.random.bernoulli(base.method_key(key, 'feature_dropout'), 1 - rate,
                                         features.shape), np.float64) / (1 - rate)
  dense = variables['params']['classifier']['output']
  w, b = np.asarray(dense['kernel'], np.float64), np.asarray(dense['bias'], np.float64)
  x = mask * np.asarray(features, np.float64)
  logits = x @ w + b
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  dlogits = (probs - np.eye(NUM_CLASSES)[np.asarray(batch['labels'])]) / BATCH
  head_grads = grads['classifier']['output']
  np.testing.assert_allclose(head_grads['kernel'], x.T @ dlogits, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(head_grads['bias'], dlogits.sum(0), rtol=1e-4, atol=1e-6)


def test_no_dropout_at_evaluation():
  """The method owns no forward, evaluation predictor or inference variables: evaluation runs
  the plain network, head(features) in evaluation mode."""
  method = FeatureDropout(rate=0.5)
  assert not (method.owns_forward or method.sets_targets or method.keeps_state)
  assert method.eval_logits() == {}
  model, variables, batch = _setup()
  assert method.init_variables(model, jax.random.key(0), variables, batch['images']) is None
  inference = methods.inference_variables([method], variables)
  assert jax.tree.structure(inference) == jax.tree.structure(variables)
  jax.tree.map(np.testing.assert_array_equal, inference, variables)
  features = model.apply(variables, batch['images'], train=False, method=model.features)
  np.testing.assert_array_equal(model.apply(variables, batch['images'], train=False),
                                model.apply(variables, features, method=model.head))


@pytest.mark.parametrize('fields, match', [
    ({'rate': 1.0}, r'methods.feature_dropout.rate: must be in \[0, 1\), got 1.0'),
    ({'weight': 0.5}, r'methods.feature_dropout.weight: .* leave it at 1.0, got 0.5'),
    ({'temperature': 2.0}, r'methods.feature_dropout.temperature: .* leave it at 1.0'),
    ({'samples': 0}, r'methods.feature_dropout.samples: .* integer >= 1 .*got 0'),
    ({'samples': 1.5}, r'methods.feature_dropout.samples: .*got 1.5'),
])
def test_bad_fields_are_refused(fields, match):
  with pytest.raises(ValueError, match=match):
    methods.create_methods({'feature_dropout': fields})
