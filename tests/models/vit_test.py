"""ViT specifics: parameter counts by hand and against timm, a NumPy forward, dropout and
stochastic depth (train only, from the 'dropout' rng, expectation kept), bfloat16."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from configs import common
from sdd_jax.config import validation as config_validation
from sdd_jax import errors
from sdd_jax import models
from sdd_jax.models import vit
from tests.methods import tiny_net

NUM_CLASSES = 7
TINY = models.tiny_kwargs('vit_tiny_cifar')


def _count(name, num_classes, size, **kwargs):
  model = models.get_model(name, num_classes=num_classes, **kwargs)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          jnp.zeros((1, size, size, 3)))
  assert set(shapes) == {'params'}  # no BatchNorm
  return sum(x.size for x in jax.tree.leaves(shapes['params']))


def _formula(dim, layers, mlp, patch, tokens, classes):
  """Parameters of a ViT, by hand: patch conv (patch^2 * 3 * D + D), class token D, position
  embeddings tokens * D; per block two LayerNorms (2 * 2D), attention (q, k, v, out: 4 (D^2 +
  D)) and the MLP (D * mlp + mlp + mlp * D + D); final LayerNorm 2D; head D * classes +
  classes."""
  block = 4 * dim + 4 * (dim * dim + dim) + 2 * dim * mlp + mlp + dim
  return (patch * patch * 3 * dim + dim + dim + tokens * dim + layers * block + 2 * dim
          + dim * classes + classes)


@pytest.mark.parametrize('name, dim, mlp', [('vit_tiny_cifar', 192, 768),
                                            ('vit_small_cifar', 384, 1536)])
def test_param_count_cifar100_matches_the_formula(name, dim, mlp):
  # 32x32 images, 4x4 patches: 64 patch tokens + the class token.
  assert _count(name, 100, 32) == _formula(dim, 12, mlp, 4, 65, 100)


def test_param_count_matches_timm_at_224():
  """With 16x16 patches on 224x224 images and 1000 classes the architecture is timm's
  vit_tiny_patch16_224 / vit_small_patch16_224 (DeiT-Ti / DeiT-S): 5,717,416 and 22,050,664
  parameters (as published by timm)."""
  assert _count('vit_tiny_cifar', 1000, 224, patch_size=16) == 5_717_416
  assert _count('vit_small_cifar', 1000, 224, patch_size=16) == 22_050_664
  assert _formula(192, 12, 768, 16, 197, 1000) == 5_717_416  # the formula agrees with timm


def _layer_norm(x, p):
  x = np.asarray(x, np.float64)
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-6) * p['scale'] + p['bias']


def _numpy_vit_features(params, images, patch):
  """Eval-mode ViT in NumPy float64: pre-LN blocks, class token after the final norm."""
  images = np.asarray(images, np.float64)
  batch, side = images.shape[0], images.shape[1] // patch
  kernel = np.asarray(params['embedding']['patch_conv']['kernel'], np.float64)
  patches = images.reshape(batch, side, patch, side, patch, 3).transpose(0, 1, 3, 2, 4, 5)
  x = patches.reshape(batch, side * side, -1) @ kernel.reshape(-1, kernel.shape[-1])
  x = x + params['embedding']['patch_conv']['bias']
  cls = np.broadcast_to(params['embedding']['cls_token'], (batch, 1, x.shape[-1]))
  x = np.concatenate([cls, x], 1) + params['embedding']['position_embedding']
  for stage in sorted(k for k in params if k.startswith('layers_')):
    for name in sorted(params[stage]):
      block = params[stage][name]
      att = block['attention']
      y = _layer_norm(x, block['norm1'])
      q, k, v = (np.einsum('btd,dhk->bthk', y, att[n]['kernel']) + att[n]['bias']
                 for n in ('query', 'key', 'value'))
      logits = np.einsum('bqhk,bshk->bhqs', q, k) / np.sqrt(q.shape[-1])
      weights = np.exp(logits - logits.max(-1, keepdims=True))
      weights /= weights.sum(-1, keepdims=True)
      y = np.einsum('bhqs,bshk->bqhk', weights, v)
      x = x + np.einsum('bqhk,hkd->bqd', y, att['out']['kernel']) + att['out']['bias']
      mlp = block['mlp']
      y = _layer_norm(x, block['norm2']) @ mlp['fc1']['kernel'] + mlp['fc1']['bias']
      y = 0.5 * y * (1 + special.erf(y / np.sqrt(2)))  # exact GELU
      x = x + y @ mlp['fc2']['kernel'] + mlp['fc2']['bias']
  return _layer_norm(x, params['encoder_norm'])[:, 0]


def test_drop_path_rates_grow_linearly_with_depth():
  np.testing.assert_allclose(vit.drop_path_rates(0.1, 4), [0, 0.1 / 3, 0.2 / 3, 0.1])
  model = models.get_model('vit_tiny_cifar', num_classes=3, **{**TINY, 'drop_path': 0.3,
                                                               'stage_sizes': (1, 2, 1, 2)})
  images = jnp.zeros((1, 8, 8, 3))
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                             images)
  bound = model.bind(variables)
  rates = [stage.drop_path_rates for stage in bound.layers]
  # 6 blocks: 0, 0.06, 0.12, ..., 0.3, grouped as the stages.
  np.testing.assert_allclose(np.concatenate(rates), [0, 0.06, 0.12, 0.18, 0.24, 0.3])
  assert [len(r) for r in rates] == [1, 2, 1, 2]


def test_drop_path_keeps_the_expectation():
  """Each example's branch is dropped whole with probability `rate`, else scaled by
  1 / (1 - rate): the mean over many examples stays that of the input (fixed seed)."""
  rate, batch = 0.3, 20_000
  x = jnp.broadcast_to(jnp.arange(1.0, 7.0).reshape(1, 2, 3), (batch, 2, 3))
  out = np.asarray(jax.jit(vit.drop_path, static_argnums=1)(x, rate, jax.random.key(0)))
  kept = np.all(out != 0, axis=(1, 2))
  assert np.all(out[~kept] == 0)  # whole examples are dropped
  np.testing.assert_allclose(out[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6)
  # Binomial: dropped share 0.3 +- 4 sigma (sigma = sqrt(0.21 / 20000) ~ 0.0032).
  assert abs((~kept).mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / batch)
  np.testing.assert_allclose(out.mean(0), np.arange(1.0, 7.0).reshape(2, 3), rtol=0.03)
  assert vit.drop_path(x, 0.0, jax.random.key(0)) is x


def test_dropout_and_drop_path_act_only_in_training_with_the_dropout_rng(random_variables):
  model = tiny_net.tiny_vit(NUM_CLASSES, dropout=0.1, drop_path=0.2)
  images = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  variables = random_variables(model, images)

  @jax.jit
  def run(variables, images, key):
    evaluated = model.apply(variables, images, train=False)
    trained = model.apply(variables, images, train=True, rngs={'dropout': key})
    return evaluated, trained

  eval_a, train_a = run(variables, images, jax.random.key(0))
  eval_b, train_b = run(variables, images, jax.random.key(1))
  _, train_a2 = run(variables, images, jax.random.key(0))
  chex.assert_trees_all_equal(eval_a, eval_b)  # eval: deterministic, no key needed
  chex.assert_trees_all_equal(train_a, train_a2)  # train: a function of the key
  assert not np.allclose(train_a, train_b)  # two keys, two masks
  assert not np.allclose(train_a, eval_a)
  with pytest.raises(Exception, match='dropout'):  # train without the key: flax refuses
    model.apply(variables, images, train=True)


def test_eval_forward_matches_numpy_and_bfloat16_stays_close(random_variables):
  """float32 features equal a NumPy float64 forward; the bfloat16 model (same variables)
  computes in bf16 (stage outputs), keeps float32 parameters and returns float32 features."""
  model = models.get_model('vit_tiny_cifar', num_classes=NUM_CLASSES, **TINY)
  model16 = models.get_model('vit_tiny_cifar', num_classes=NUM_CLASSES, dtype=jnp.bfloat16,
                             **TINY)
  images = jax.random.normal(jax.random.key(1), (3, 32, 32, 3))
  variables = random_variables(model, images)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))

  @jax.jit
  def run(variables, images):
    features = model.apply(variables, images, train=False, method=model.features)
    stages16 = model16.apply(variables, images, train=False, method=model16.stages)
    features16 = model16.apply(variables, images, train=False, method=model16.features)
    return features, stages16, features16

  features, stages16, features16 = run(variables, images)
  expected = _numpy_vit_features(jax.device_get(variables['params']), images, 4)
  assert expected.shape == (3, 16)
  np.testing.assert_allclose(features, expected, rtol=2e-4, atol=2e-4)
  assert all(s.dtype == jnp.bfloat16 for s in stages16)
  assert features16.dtype == jnp.float32
  np.testing.assert_allclose(features16, features, rtol=0.1, atol=0.1)


@pytest.mark.parametrize('kwargs, message', [
    (dict(hidden_size=16, num_heads=3), 'hidden_size=16 must be a multiple of num_heads=3'),
    (dict(drop_path=1.0), r'drop_path must be in \[0, 1\), got 1.0'),
    (dict(dropout=-0.1), r'dropout must be in \[0, 1\), got -0.1'),
    (dict(patch_size=5), r'image side 32x32 is not a multiple of patch_size=5'),
])
def test_bad_options_are_refused(kwargs, message):
  model = models.get_model('vit_tiny_cifar', num_classes=3, **{**TINY, **kwargs})
  with pytest.raises(ValueError, match=message):
    jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                   jnp.zeros((1, 32, 32, 3)))


def test_byot_with_a_vit_is_refused_at_validation_in_one_line():
  """BYOT's auxiliary heads convolve stage feature maps; the ViT's stages are tokens."""
  config = common.smoke(common.recipe())
  config.model.name = 'vit_tiny_cifar'
  config.model.kwargs = models.tiny_kwargs('vit_tiny_cifar')
  config.methods.byot = dict(common.BYOT)
  with pytest.raises(errors.UserError, match=r"^config.methods.byot: its auxiliary heads are "
                     r"convolutions on stage feature maps, and vit_tiny_cifar's stages are token "
                     r"sequences; use a CNN \(e.g. resnet18_cifar\) or drop methods.byot$"):
    config_validation.validate(config)
  config.model.name = 'resnet18_cifar'  # the same config with a CNN passes
  config.model.kwargs = models.tiny_kwargs('resnet18_cifar')
  config_validation.validate(config)


def test_options_that_cannot_build_a_vit_are_refused_at_validation():
  """Before the workdir is touched: heads that do not divide the width (defaults included)."""
  config = common.smoke(common.recipe())
  config.model.name = 'vit_small_cifar'  # registered hidden_size 384
  config.model.kwargs = {'num_heads': 5}
  with pytest.raises(errors.UserError, match=r'^config.model.kwargs: ViT: hidden_size=384 must '
                     r'be a multiple of num_heads=5$'):
    config_validation.validate(config)
  config.model.kwargs = {'num_heads': 8}  # 384 = 8 x 48
  config_validation.validate(config)
