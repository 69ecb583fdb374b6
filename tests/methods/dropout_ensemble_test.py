"""SD-Dropout's `dropout_ensemble` predictor (sdd_jax/methods/dropout_ensemble.py) against
masked head passes computed by hand (NumPy, float64, masks drawn with the documented key), its
cost (one backbone pass, never K) and a config that evaluates with it end to end."""
import functools
import types
import zlib

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import data as data_lib
from sdd_jax import methods
from sdd_jax import parallel
from sdd_jax.classification import trainer
from sdd_jax.config import validation
from sdd_jax.evaluators import runner
from tests import workdirs
from tests.methods import tiny_net

NUM_CLASSES, PREFIX = 5, 'sd_dropout/dropout_ensemble'


@functools.lru_cache()
def _setup():
  model = tiny_net.TinyNet(num_classes=NUM_CLASSES)
  images = jax.random.normal(jax.random.key(1), (6, 16, 16, 3))
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0, impl='rbg'), images)
  # Running statistics away from 0 / 1, so evaluation mode differs from training mode.
  variables = {**variables, 'batch_stats': jax.tree.map(lambda x: x + 0.1,
                                                        variables['batch_stats'])}
  features = model.apply(variables, images, train=False, method=model.features)
  return model, variables, images, np.asarray(features, np.float64)


def _predict(images, **fields):
  """The predictor of SDDropout(**fields), as the runner gets it, jitted."""
  model, variables, _, _ = _setup()
  fn = methods.eval_logits(methods.create_methods({'sd_dropout': fields}))[PREFIX]
  return np.asarray(jax.jit(lambda v, x: fn(model, v, x))(variables, images))


def _mask_by_hand(k, width, rate):
  """Mask k as the docstring derives it: key(0), crc32 of the name (31 bits), then k."""
  key = jax.random.fold_in(jax.random.key(0),
                           zlib.crc32(b'sd_dropout/dropout_ensemble') & 0x7FFFFFFF)
  keep = 1 - rate
  return np.asarray(jax.random.bernoulli(jax.random.fold_in(key, k), keep, (width,))) / keep


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _log_softmax(z):
  return np.log(_softmax(z))


def _head(masked_features):
  _, variables, _, _ = _setup()
  dense = variables['params']['classifier']['output']  # the default head: one Dense layer
  return (masked_features @ np.asarray(dense['kernel'], np.float64)
          + np.asarray(dense['bias'], np.float64))


def test_rate_zero_is_the_plain_network():
  model, variables, images, _ = _setup()
  plain = np.asarray(model.apply(variables, images, train=False), np.float64)
  np.testing.assert_allclose(_predict(images, rate=0.0, eval_masks=3), _log_softmax(plain),
                             atol=2e-6)


@pytest.mark.parametrize('count', [1, 2])
def test_one_and_two_masks_are_masked_forwards_by_hand(count):
  _, _, images, features = _setup()
  masks = [_mask_by_hand(k, features.shape[1], 0.5) for k in range(count)]
  probs = np.mean([_softmax(_head(m * features)) for m in masks], axis=0)
  np.testing.assert_allclose(_predict(images, rate=0.5, eval_masks=count), np.log(probs),
                             rtol=1e-5, atol=1e-6)
  if count == 2:  # two different masks, so the mean is not one of them
    assert np.abs(masks[0] - masks[1]).max() > 0
    assert np.abs(np.log(probs) - _log_softmax(_head(masks[0] * features))).max() > 1e-3


def test_an_examples_prediction_ignores_its_batch_and_row():
  _, _, images, _ = _setup()
  whole = _predict(images)
  padded = jnp.concatenate([images[::-1], jnp.zeros_like(images[:2])])  # reversed, 2 pad rows
  np.testing.assert_allclose(_predict(padded)[:6][::-1], whole, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_predict(images[2:3]), whole[2:3], rtol=1e-5, atol=1e-6)


def test_beside_dml_it_runs_on_network_0():
  """A method that does not own the forward gets the plain network's variables (DML: net0's)
  from the whole tree."""
  model, variables, images, _ = _setup()
  fn = methods.eval_logits(methods.create_methods({'dml': {}, 'sd_dropout': {}}))[PREFIX]
  tree = {c: {'net0': v, 'net1': jax.tree.map(jnp.zeros_like, v)} for c, v in variables.items()}
  np.testing.assert_allclose(jax.jit(lambda v, x: fn(model, v, x))(tree, images),
                             _predict(images), rtol=1e-6, atol=1e-6)


def _ops(fn, *args):
  """Every primitive name in the jaxpr of `fn(*args)`, sub-jaxprs included."""
  names = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      names.append(eqn.primitive.name)
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return names


def test_one_backbone_pass_and_k_head_passes():
  """As many convolutions (the backbone) as the plain network for every K, and one batched
  head matmul; the compiled FLOPs of K=32 exceed K=1's by the head's 31 extra passes only."""
  model, variables, images, features = _setup()
  plain = functools.partial(model.apply, train=False)
  predictor = {k: methods.eval_logits(methods.create_methods({'sd_dropout': {'eval_masks': k}}))[
      PREFIX] for k in (1, 32)}
  convs = lambda fn: _ops(fn, variables, images).count('conv_general_dilated')
  assert convs(plain) == 5  # the stem and four stages
  for fn in predictor.values():
    ops = _ops(lambda v, x, fn=fn: fn(model, v, x), variables, images)
    assert ops.count('conv_general_dilated') == 5 and ops.count('dot_general') == 1

  def flops(fn):
    return jax.jit(fn).lower(variables, images).compile().cost_analysis()['flops']

  backbone = flops(functools.partial(model.apply, train=False, method=model.features))
  one, many = (flops(lambda v, x, fn=fn: fn(model, v, x)) for fn in predictor.values())
  head = 2 * images.shape[0] * features.shape[1] * NUM_CLASSES  # one head pass's matmul
  assert 0 < many - one < 31 * head * 3 < 0.5 * backbone  # masking and softmax: < 2 heads more


@pytest.mark.parametrize('value', [0, -2, 2.5, True])
def test_eval_masks_must_be_a_positive_integer(value):
  with pytest.raises(ValueError, match=r'^methods.sd_dropout.eval_masks: the number of dropout '
                                       r'masks the dropout_ensemble predictor averages, an '
                                       r'integer >= 1, got '):
    methods.create_methods({'sd_dropout': {'eval_masks': value}})


def _config(**sd_dropout):
  config = workdirs.tiny_config(sd_dropout=True)
  config.methods.sd_dropout.update(sd_dropout)
  config.evals = {'accuracy': {},
                  'ens': {'type': 'accuracy', 'pred': 'dropout_ensemble'},
                  'ens_cal': {'type': 'calibration', 'pred': 'dropout_ensemble'},
                  'ens_ts': {'type': 'temperature', 'pred': 'dropout_ensemble'},
                  'ens_fgsm': {'type': 'fgsm', 'pred': 'dropout_ensemble',
                               'epsilons': (0.2,), 'norm_epsilons': (), 'paper_epsilons': ()}}
  return config


def test_the_predictor_needs_the_masks_on_the_pooled_features():
  with pytest.raises(validation.ConfigError, match=r"^config.methods.sd_dropout: config.evals."
                     r"ens.pred='dropout_ensemble' masks the pooled features, but position=2 "
                     r"trains the masks on stage 2's output; use position 4 or another pred$"):
    validation.validate(_config(position=2))


def test_a_config_evaluates_with_it_and_reproduces(tmp_path):
  """Accuracy, calibration, temperature scaling and FGSM on the predictor through the one runner, on 8 devices;
  again with another batch layout (eval batch 40: other rows, other padding): same numbers."""
  config = _config()
  validation.validate(config)
  model = trainer.create_model(config)
  mesh = parallel.create_mesh()
  source = data_lib.create_source(config.data, config.data.eval_split)
  shape = (1, *config.data.synthetic_shape)
  state = types.SimpleNamespace(step=0, variables=jax.jit(functools.partial(
      model.init, train=False))(jax.random.key(0, impl='rbg'), jnp.zeros(shape)))
  configured = methods.create_methods(config.methods)

  def evaluate(batch_size, workdir):
    config.eval_batch_size = batch_size
    return trainer.make_evaluate(config, model, mesh, source, str(workdir), configured)(state)

  first = evaluate(24, tmp_path / 'a')
  assert first['ens/count'] == first['test/count'] == 64
  assert {'ens_cal/ece', 'ens_fgsm/pix_0.2', 'ens_ts/t_star'} <= set(first)
  # temperature scaling of the ensemble starts from the ensemble's own calibration
  assert first['ens_ts/ece_before'] == pytest.approx(first['ens_cal/ece'], abs=1e-4)
  assert first['ens_ts/nll_before'] == pytest.approx(first['ens/nll'], rel=1e-5)
  assert first['ens/nll'] != first['test/nll']  # the sections ran the predictor, not the network
  # On request only: beside a plain accuracy section, no derived run (DML's predictors get one).
  alone = _config()
  alone.evals = {'accuracy': {}}
  assert list(runner.Runner(alone, model, mesh, str(tmp_path), configured,
                            sources={'test': source}).runs) == ['accuracy']
  assert evaluate(24, tmp_path / 'b') == first
  other = evaluate(40, tmp_path / 'c')
  assert other.keys() == first.keys()
  for key, value in first.items():
    assert other[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
