"""Every registered method, alone and with `sd_dropout`, runs two steps of the one jitted train
step on a tiny model over 8 simulated devices, through the hooks only (methods/base.py); the
forward owners also on a model without BatchNorm and with dropout inside."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common
from sdd_jax import data as data_lib
from sdd_jax import methods
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from sdd_jax import losses
from sdd_jax.classification import trainer
from sdd_jax.methods import base
from sdd_jax.methods import forwards
from tests.methods import bn_free_net
from tests.methods import tiny_net

OPTIM = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                                       lr_boundaries=(1,), lr_decay=0.1, warmup_epochs=0))
NUM_CLASSES, BATCH, SIZE = 5, 16, 16
RUN = methods.RunInfo(num_examples=40, num_classes=NUM_CLASSES, steps_per_epoch=1,
                      num_epochs=2, num_devices=8)
CASES = [[name] for name in methods.METHODS.names()] + [
    [name, 'sd_dropout'] for name in methods.METHODS.names() if name != 'sd_dropout']
# BatchNorm-free, dropout inside, SD-Dropout at stage 2 (its masked copies run the remaining
# stages in training mode): two networks, evaluated too (net1 and the ensemble); the plain
# forward: tests/methods/adapter_test.py and tests/classification/step_test.py. (More cases cost ~10 s each.)
BN_FREE_CASES = [['dml', 'sd_dropout']]


def _model():
  return tiny_net.TinyNet(num_classes=NUM_CLASSES)


def _batches():
  """Two global batches with every key a method may need; indices distinct within an epoch."""
  rng = np.random.default_rng(0)
  order = rng.permutation(RUN.num_examples)
  out = []
  for step in range(2):
    images = rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32)
    out.append({'images': images,
                'labels': rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32),
                'index': order[step * BATCH:(step + 1) * BATCH].astype(np.int32),
                'second_view': images[:, :, ::-1].copy(),
                'pair_images': rng.normal(size=images.shape).astype(np.float32)})
  return out


def _eval_config():
  config = common.recipe()
  config.data = common.data_config('synthetic', source='synthetic', num_examples=24,
                                   num_classes=NUM_CLASSES, synthetic_shape=(SIZE, SIZE, 3),
                                   image_size=SIZE, crop_padding=2)
  config.eval_batch_size = 24
  return config


@pytest.mark.parametrize('names', CASES, ids='+'.join)
def test_two_steps_on_eight_devices(names, tmp_path):
  _two_steps_on_eight_devices(_model(), {name: {} for name in names}, tmp_path,
                              evaluate=len(names) == 1)


@pytest.mark.parametrize('names', BN_FREE_CASES, ids='+'.join)
def test_two_steps_without_batchnorm(names, tmp_path):
  config = {name: {} for name in names}
  config['sd_dropout'] = {'position': 2}
  _two_steps_on_eight_devices(bn_free_net.BNFreeNet(num_classes=NUM_CLASSES), config, tmp_path,
                              evaluate=True)


def _two_steps_on_eight_devices(model, method_config, tmp_path, evaluate):
  assert jax.device_count() == 8
  mesh = parallel.create_mesh()
  configured = methods.create_methods(method_config)
  schedule = optim.make_lr_schedule(OPTIM, RUN.steps_per_epoch)
  tx = optim.make_optimizer(OPTIM, schedule)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx,
                                    methods=configured, run=RUN),
                  out_shardings=state_lib.shardings(mesh, configured))(
                      state_lib.init_key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  structure = jax.tree.structure(state)
  params0 = jax.device_get(state.params)
  train_step = step_lib.make_train_step(model, tx, configured, seed=0, lr_schedule=schedule,
                                        mesh=mesh, run=RUN)
  for batch in _batches():
    state, metrics = train_step(state, parallel.to_global(batch, mesh))
  metrics = jax.device_get(metrics)
  assert train_step._cache_size() == 1  # pylint: disable=protected-access
  assert jax.tree.structure(state) == structure and int(state.step) == 2
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  # The reported terms add up to the total (their weighing against an independent computation:
  # test_the_total_is_ce_plus_weight_t_squared_times_each_term).
  expected = metrics['train/loss_ce'] + sum(
      m.weight * m.temperature ** 2 * metrics[f'train/loss_{m.name}']
      for m in configured if f'train/loss_{m.name}' in metrics)
  np.testing.assert_allclose(metrics['train/loss'], expected, rtol=1e-5)
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params,
                       params0)
  assert all(v > 0 for v in jax.tree.leaves(moved))  # every parameter is trained
  for name, spec in methods.state_partitions(configured).items():  # declared layout kept
    for leaf, leaf_spec in zip(jax.tree.leaves(state.method_states[name]),
                               jax.tree.leaves(spec, is_leaf=lambda x: isinstance(
                                   x, jax.sharding.PartitionSpec))):
      assert leaf.sharding.spec == leaf_spec

  # The inference path is the plain network, whatever the method added to the state.
  plain = jax.eval_shape(functools.partial(model.init, train=False), state_lib.init_key(0),
                         jnp.zeros((1, SIZE, SIZE, 3)))
  inference = methods.inference_variables(configured, state.variables)
  assert jax.tree.structure(inference) == jax.tree.structure(plain)
  stored = {c: tree for c, tree in state.variables.items() if tree}
  reported = [p for p in methods.eval_logits(configured)  # SD-Dropout's ensemble: on request
              if p not in methods.on_request(configured)]
  if evaluate and (jax.tree.structure(inference) != jax.tree.structure(stored) or reported):
    config = _eval_config()
    source = data_lib.create_source(config.data, 'test')
    results = trainer.make_evaluate(config, model, mesh, source, str(tmp_path),
                                    configured)(state)
    assert results['test/count'] == 24
    for prefix in reported:
      assert 0 <= results[f'{prefix}/top1'] <= 100 and results[f'{prefix}/count'] == 24


def _log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _kl(target_logits, logits, t):  # KL(p^T(target) || p^T(logits)) per example, float64
  log_p, log_q = _log_softmax(target_logits / t), _log_softmax(logits / t)
  return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)


def test_the_total_is_ce_plus_weight_t_squared_times_each_term():
  """docs/methods.md (paper Eq. 5): total = CE + sum_m weight_m * T_m**2 * term_m, each term
  here computed in NumPy (float64) from the step's forward: SD-Dropout (T = 2.5, weight 0.7)
  on the anchors' pooled features with the masks of its key, through the Dense head, and
  CS-KD (T = 4, weight 3) from the partners' logits. `train/loss_<name>` is the bare term."""
  model = _model()
  variables = jax.jit(functools.partial(model.init, train=False))(
      state_lib.init_key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  configured = methods.create_methods({'sd_dropout': {'weight': 0.7, 'temperature': 2.5},
                                       'cs_kd': {'weight': 3.0}})
  key = jax.random.key(5)

  @jax.jit
  def run(batch):
    ctx, _ = methods.prepare(configured, model, variables, batch, key=key)
    total, metrics = methods.combine(configured, ctx, key, methods.base_loss(ctx))
    masks = losses.dropout_masks(base.method_key(key, 'sd_dropout'), ctx.features.shape, 0.5)
    return total, metrics, ctx.features, ctx.outputs['pair_logits'], masks

  batch = _batches()[0]
  total, metrics, features, pair_logits, masks = jax.device_get(run(batch))
  features, pair_logits, masks = (np.asarray(a, np.float64) for a in (features, pair_logits,
                                                                      masks))
  assert set(np.unique(masks)) == {0.0, 2.0}  # inverted dropout at rate 0.5
  dense = variables['params']['classifier']['output']  # the head is one Dense layer
  kernel, bias = (np.asarray(dense[k], np.float64) for k in ('kernel', 'bias'))
  logits = features @ kernel + bias
  ce = -_log_softmax(logits)[np.arange(BATCH), batch['labels']].mean()
  z_u, z_v = (m * features @ kernel + bias for m in masks)
  sdd = (_kl(z_u, z_v, 2.5) + _kl(z_v, z_u, 2.5)).mean()
  cs_kd = _kl(pair_logits, logits, 4.0).mean()
  assert min(sdd, cs_kd) > 1e-3  # the terms weigh in
  np.testing.assert_allclose(metrics['train/loss_ce'], ce, rtol=1e-5)
  np.testing.assert_allclose(metrics['train/loss_sd_dropout'], sdd, rtol=1e-4)
  np.testing.assert_allclose(metrics['train/loss_cs_kd'], cs_kd, rtol=1e-4)
  expected = ce + 0.7 * 2.5 ** 2 * sdd + 3.0 * 4.0 ** 2 * cs_kd
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics['train/loss'], expected, rtol=1e-5)


def test_joint_forward_is_one_batchnorm_batch_of_both_inputs():
  """CS-KD / DDGSD: anchors and partners in ONE training-mode batch, interleaved by example:
  equal to the first / second half of the network on the concatenation."""
  model = _model()
  variables = jax.jit(functools.partial(model.init, train=False))(
      state_lib.init_key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  batch = _batches()[0]

  @jax.jit
  def run(a, b):
    (first, second), stats = forwards.joint_forward(model, variables, [a, b])
    logits, updates = model.apply(variables, jnp.concatenate([a, b]), train=True,
                                  mutable=['batch_stats'])
    stages = model.apply(variables, jnp.concatenate([a, b]), train=True, method=model.stages,
                         mutable=['batch_stats'])[0]
    return first, second, logits, stages, stats, updates['batch_stats']

  first, second, logits, stages, stats, reference = run(batch['images'], batch['pair_images'])
  np.testing.assert_allclose(first[1], logits[:BATCH], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(second[1], logits[BATCH:], rtol=1e-4, atol=1e-5)
  for k in range(4):  # each input's stage outputs: its rows of the joint batch's stages
    np.testing.assert_allclose(first[2][k], stages[k][:BATCH], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second[2][k], stages[k][BATCH:], rtol=1e-4, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), stats,
               reference)


@pytest.mark.parametrize('owner, second', [('cs_kd', 'pair_images'), ('ddgsd', 'second_view')])
def test_sd_dropout_masks_the_stage_outputs_of_the_joint_forward(owner, second):
  """SD-Dropout at stage 2 with CS-KD / DDGSD: the masked path starts from the stage-2 output
  of the ONE joint forward (BatchNorm statistics of all 2B images, as the clean path), not
  from a re-run of the stages on B images; here computed without the methods package."""
  model = _model()
  variables = jax.jit(functools.partial(model.init, train=False))(
      state_lib.init_key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  configured = methods.create_methods({owner: {}, 'sd_dropout': {'position': 2}})
  key = jax.random.key(5)

  @jax.jit
  def run(batch):
    ctx, _ = methods.prepare(configured, model, variables, batch, key=key)
    _, metrics = methods.combine(configured, ctx, key, methods.base_loss(ctx))

    def stage2(images):
      return model.apply(variables, images, train=True, method=model.stages,
                         mutable=['batch_stats'])[0][1]

    def sd_term(x):  # Eq. 3 on masked copies of the stage-2 map x, the masks of the step key
      def head(y):
        f = model.apply(variables, 2, y, True, method=model.from_stage,
                        mutable=['batch_stats'])[0]
        return model.apply(variables, f, method=model.head)
      return jnp.mean(losses.sd_dropout(head, x, base.method_key(key, 'sd_dropout'), rate=0.5,
                                        temperature=3.0))

    joint = stage2(jnp.concatenate([batch['images'], batch[second]]))[:BATCH]
    alone = stage2(batch['images'])
    return (ctx.stage_outputs[1], joint, metrics['train/loss_sd_dropout'], sd_term(joint),
            sd_term(alone))

  got, joint, loss, expected, alone = run(_batches()[0])
  np.testing.assert_allclose(got, joint, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-6)
  assert abs(float(loss) - float(alone)) > 1e-3 * abs(float(alone))  # B-image statistics differ


# The Vision Transformer (no BatchNorm; dropout and stochastic depth on, drawn from the step's
# dropout key) with every method that applies to it, combined three ways to share compilations:
# SD-Dropout at stage 2 (its masked copies run the remaining blocks in training mode) with CS-KD,
# label smoothing and feature dropout; DDGSD with PS-KD and SD-Dropout; DML with SD-Dropout,
# evaluated too. BYOT is refused for token stages at config validation (tests/models/).
VIT_CASES = [['cs_kd', 'label_smoothing', 'feature_dropout', 'sd_dropout'],
             ['ddgsd', 'ps_kd', 'sd_dropout'], ['dml', 'sd_dropout']]


def test_the_vit_cases_cover_every_method_but_byot():
  assert sorted({n for case in VIT_CASES for n in case}) == sorted(
      set(methods.METHODS.names()) - {'byot'})


@pytest.mark.parametrize('names', VIT_CASES, ids='+'.join)
def test_two_steps_of_a_vit_with_dropout(names, tmp_path):
  config = {name: {} for name in names}
  if 'cs_kd' in names:
    config['sd_dropout'] = {'position': 2}
  _two_steps_on_eight_devices(tiny_net.tiny_vit(NUM_CLASSES), config, tmp_path,
                              evaluate=names[0] == 'dml')
