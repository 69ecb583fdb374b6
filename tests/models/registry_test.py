"""Contract tests over every registered model, and exact torchvision parameter counts."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import models

# Trainable parameters ('params' only) of torchvision.models.<name>(num_classes=1000).
TORCHVISION_PARAM_COUNTS = {
    'resnet18': 11_689_512,
    'resnet34': 21_797_672,
    'resnet50': 25_557_032,
    'resnet101': 44_549_160,
    'resnet152': 60_192_808,
    'densenet121': 7_978_856,
}
FEATURE_DIMS = {'resnet18': 512, 'resnet34': 512, 'resnet50': 2048, 'resnet101': 2048,
                'resnet152': 2048, 'densenet121': 1024}

# Expected shapes of each model's tiny variant (`models.tiny_kwargs`), worked out by hand:
# (image size, the 4 stage outputs' shapes without the batch, has BatchNorm).
_BASIC = (4, 8, 16, 32)
_BOTTLENECK = (16, 32, 64, 128)
# DenseNet: 8 stem channels; each block adds 4, each transition halves: 12->6, 10->5, 9->4, 8.
_DENSE = (6, 5, 4, 8)


def _maps(spatial, channels):
  return tuple((hw, hw, c) for hw, c in zip(spatial, channels))


# ViT: 32x32 images in 4x4 patches = 64 tokens + the class token, width 16, every stage.
_TOKENS = ((65, 16),) * 4
TINY = {
    'resnet18_cifar': (32, _maps((32, 16, 8, 4), _BASIC), True),
    'resnet34_cifar': (32, _maps((32, 16, 8, 4), _BASIC), True),
    'resnet50_cifar': (32, _maps((32, 16, 8, 4), _BOTTLENECK), True),
    'preact_resnet18_cifar': (32, _maps((32, 16, 8, 4), _BASIC), True),
    'resnet18': (64, _maps((16, 8, 4, 2), _BASIC), True),
    'resnet34': (64, _maps((16, 8, 4, 2), _BASIC), True),
    'resnet50': (64, _maps((16, 8, 4, 2), _BOTTLENECK), True),
    'resnet101': (64, _maps((16, 8, 4, 2), _BOTTLENECK), True),
    'resnet152': (64, _maps((16, 8, 4, 2), _BOTTLENECK), True),
    'densenet121_cifar': (32, _maps((16, 8, 4, 4), _DENSE), True),
    'densenet121': (64, _maps((8, 4, 2, 2), _DENSE), True),
    'vit_tiny_cifar': (32, _TOKENS, False),
    'vit_small_cifar': (32, _TOKENS, False),
}
NUM_CLASSES = 7
BATCH = 2


def param_count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('name', sorted(TORCHVISION_PARAM_COUNTS))
def test_param_count_matches_torchvision(name):
  model = models.get_model(name, num_classes=1000)
  shapes = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  assert set(shapes) == {'params', 'batch_stats'}
  assert param_count(shapes['params']) == TORCHVISION_PARAM_COUNTS[name]
  assert shapes['params']['classifier']['output']['kernel'].shape == (FEATURE_DIMS[name], 1000)


def test_param_count_resnet18_cifar100():
  model = models.get_model('resnet18_cifar', num_classes=100)
  shapes = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  assert param_count(shapes['params']) == 11_220_132


def test_every_model_has_a_tiny_version_here():
  assert sorted(TINY) == models.MODELS.names()


def test_tiny_variants_are_registered_beside_the_models():
  assert models.tiny_kwargs('resnet18_cifar') == dict(width=4, stage_sizes=(1, 1, 1, 1))
  assert models.tiny_kwargs('densenet121')['growth_rate'] == 4
  vit = models.tiny_kwargs('vit_small_cifar')
  assert (vit['hidden_size'], vit['dropout'], vit['drop_path']) == (16, 0.0, 0.0)
  vit['hidden_size'] = 8  # a fresh dict each time
  assert models.tiny_kwargs('vit_small_cifar')['hidden_size'] == 16
  with pytest.raises(ValueError, match=r"unknown model 'nope'.*resnet18_cifar"):
    models.tiny_kwargs('nope')


def test_unknown_model_lists_known_names():
  with pytest.raises(ValueError, match=r"unknown model 'nope'.*resnet18_cifar"):
    models.get_model('nope')


@pytest.mark.parametrize('typo,suggested', [('resnet_18', 'resnet18'),
                                             ('densenet121cifar', 'densenet121_cifar'),
                                             ('vit_tiny', 'vit_tiny_cifar')])
def test_an_unknown_model_suggests_the_nearest_names_as_config_errors_do(typo, suggested):
  with pytest.raises(ValueError, match=rf"unknown model '{typo}'; known models: .*; did you "
                                       rf'mean {suggested}( or [a-z0-9_]+)*\?$') as info:
    models.get_model(typo, num_classes=10)
  assert '\n' not in str(info.value)
  with pytest.raises(ValueError, match=r"unknown model 'xyz'; known models: [a-z0-9_, ]+$"):
    models.get_model('xyz', num_classes=10)  # nothing near: no suggestion


def test_num_classes_is_required():
  with pytest.raises(ValueError, match='pass num_classes'):
    models.get_model('resnet18_cifar')


def _eval_outputs(model, images):
  """Every eval-mode method, inside one `apply` (a `method=` function of the module)."""
  stages = model.stages(images, train=False)
  features = model.features(images, train=False)
  return {
      'logits': model(images, train=False),
      'features': features,
      'head': model.head(features),
      'stages': stages,
      'from_stage': [model.from_stage(k, s, train=False) for k, s in enumerate(stages, 1)],
  }


def _train_outputs(model, images):
  stages = model.stages(images, train=True)
  features = model.from_stage(4, stages[-1], train=True)
  return {'logits': model.head(features), 'features': features,
          'from_stage_2': model.from_stage(2, stages[1], train=True)}


# The model is a static argument: tiny versions that are equal (resnet50/101/152 with
# stage_sizes (1, 1, 1, 1)) share one compilation.
@functools.partial(jax.jit, static_argnums=0)
def run_eval(model, variables, images):
  return model.apply(variables, images, method=_eval_outputs, mutable=['batch_stats'])


@functools.partial(jax.jit, static_argnums=0)
def run_train(model, variables, images):
  return model.apply(variables, images, method=_train_outputs, mutable=['batch_stats'])


@pytest.mark.parametrize('name', models.MODELS.names())
def test_model_contract(name, random_variables):
  size, stage_shapes, batch_norm = TINY[name]
  model = models.get_model(name, num_classes=NUM_CLASSES, **models.tiny_kwargs(name))
  images = jax.random.normal(jax.random.key(1), (BATCH, size, size, 3))
  variables = random_variables(model, images)
  assert ('batch_stats' in variables) == batch_norm

  out, eval_state = run_eval(model, variables, images)
  dim = stage_shapes[-1][-1]
  chex.assert_shape(out['logits'], (BATCH, NUM_CLASSES))
  chex.assert_shape(out['features'], (BATCH, dim))
  assert out['logits'].dtype == jnp.float32 and out['features'].dtype == jnp.float32
  chex.assert_tree_all_finite(out)
  assert len(out['stages']) == 4
  for stage, shape in zip(out['stages'], stage_shapes):
    chex.assert_shape(stage, (BATCH,) + shape)
  np.testing.assert_allclose(out['head'], out['logits'], rtol=1e-5, atol=1e-5)
  for k, pooled in enumerate(out['from_stage'], start=1):
    np.testing.assert_allclose(pooled, out['features'], rtol=1e-5, atol=1e-5, err_msg=f'k={k}')
  # Eval uses the running statistics, leaves them alone, and is deterministic.
  chex.assert_trees_all_equal(eval_state.get('batch_stats'), variables.get('batch_stats'))
  chex.assert_trees_all_equal(run_eval(model, variables, images)[0]['logits'], out['logits'])

  train, train_state = run_train(model, variables, images)
  chex.assert_shape(train['logits'], (BATCH, NUM_CLASSES))
  np.testing.assert_allclose(train['from_stage_2'], train['features'], rtol=1e-5, atol=1e-5)
  if not batch_norm:  # the tiny ViT: no BatchNorm, dropout and drop path 0: train = eval
    np.testing.assert_allclose(train['logits'], out['logits'], rtol=1e-5, atol=1e-5)
    assert not train_state
    return
  # Train mode normalises with batch statistics, eval with the running ones.
  assert not np.allclose(train['logits'], out['logits'])
  # Every BatchNorm in train mode updates both of its running statistics.
  old = jax.tree.leaves(variables['batch_stats'])
  new = jax.tree.leaves(train_state['batch_stats'])
  assert len(old) == len(new) > 0
  for before, after in zip(old, new):
    assert not np.allclose(before, after)


def test_methods_callable_one_by_one_with_apply(random_variables):
  """The public spelling: `model.apply(variables, ..., method=model.<name>)`, jitted."""
  model = models.get_model('resnet18_cifar', num_classes=NUM_CLASSES,
                           **models.tiny_kwargs('resnet18_cifar'))
  images = jax.random.normal(jax.random.key(1), (BATCH, 32, 32, 3))
  variables = random_variables(model, images)

  @jax.jit
  def run(variables, images):
    logits, state = model.apply(variables, images, train=True, mutable=['batch_stats'])
    stages, _ = model.apply(
        variables, images, train=True, method=model.stages, mutable=['batch_stats'])
    pooled, _ = model.apply(
        variables, 3, stages[2], train=True, method=model.from_stage, mutable=['batch_stats'])
    features, _ = model.apply(
        variables, images, train=True, method=model.features, mutable=['batch_stats'])
    head = model.apply(variables, features, method=model.head)
    return logits, state, pooled, features, head

  logits, state, pooled, features, head = run(variables, images)
  assert set(state) == {'batch_stats'}
  np.testing.assert_allclose(pooled, features, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(head, logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('k', [0, 5])
def test_from_stage_rejects_bad_k(k):
  model = models.get_model('resnet18_cifar', num_classes=3, **models.tiny_kwargs('resnet18_cifar'))
  images = jnp.zeros((1, 32, 32, 3))
  variables = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), images)
  with pytest.raises(ValueError, match='k must be in 1..4'):
    jax.eval_shape(
        lambda v: model.apply(v, k, images, train=False, method=model.from_stage), variables)
