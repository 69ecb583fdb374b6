"""ps_kd: progressive targets against NumPy, the table in the train state (sharded by rows,
holding exactly the softmax of the examples seen), and an interrupted + resumed run that equals
a straight one, table included."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common
from sdd_jax.workdir import checkpoint
from sdd_jax import data as data_lib
from sdd_jax import methods
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from sdd_jax.classification import trainer
from sdd_jax.data import augment
from sdd_jax.methods import base
from sdd_jax.methods.ps_kd import PSKD
from tests.methods import numpy_reference as ref
from tests.methods import tiny_net

LABELS = np.array([3, 0, 1, 1])
INDEX = np.array([5, 2, 7, 0])
RUN = methods.RunInfo(num_examples=8, num_classes=5, steps_per_epoch=10, num_epochs=4)


def _ctx(logits, table, step):
  return base.StepContext(model=None, variables=None, batch={'labels': LABELS, 'index': INDEX},
                          features=jnp.zeros((4, 3)), logits=logits, step=step, run=RUN,
                          method_states={'ps_kd': {'table': table}})


def _table(rng):
  table = ref.softmax(rng.normal(size=(8, 5))).astype(np.float32)
  table[7] = 0  # example 7 has not been seen yet
  return table


@pytest.mark.parametrize('step,alpha', [(0, 0.0), (9, 0.0), (10, 0.8 * 2 / 4), (35, 0.8)])
def test_targets_loss_and_gradients_against_numpy(step, alpha):
  rng = np.random.default_rng(step)
  logits, table = ref.logits(rng), _table(rng)
  method = PSKD()

  def total(z, table):
    ctx = _ctx(z, table, step)
    ctx = dataclasses.replace(ctx, targets=method.targets(ctx, jax.random.key(0)))
    loss, metrics = methods.combine([method], ctx, jax.random.key(0), methods.base_loss(ctx))
    return loss, (ctx.targets, metrics)

  (loss, (targets, metrics)), (grad, table_grad) = jax.jit(
      jax.value_and_grad(total, argnums=(0, 1), has_aux=True))(logits, table)
  onehot = np.eye(5)[LABELS]
  past = table[INDEX].astype(np.float64)
  past[2] = onehot[2]  # never seen: one-hot, not an unnormalised mixture
  expected = (1 - alpha) * onehot + alpha * past
  np.testing.assert_allclose(targets, expected, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(metrics['train/ps_kd_alpha'], alpha, rtol=1e-6)
  np.testing.assert_allclose(loss, ref.cross_entropy(logits, expected).mean(), rtol=1e-5)
  np.testing.assert_allclose(grad, (ref.softmax(logits) - expected) / 4, rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(table_grad, 0.0)  # the table is detached
  assert 'train/loss_ps_kd' not in metrics  # the soft CE replaces the CE: no term


def test_update_writes_the_softmax_rows_of_the_batch_only():
  rng = np.random.default_rng(0)
  logits, table = ref.logits(rng), _table(rng)
  new = PSKD().update_state(_ctx(logits, table, 3), {'table': jnp.asarray(table)})['table']
  expected = table.copy()
  expected[INDEX] = ref.softmax(logits)
  np.testing.assert_allclose(new, expected, rtol=1e-6, atol=1e-7)


def test_validation():
  with pytest.raises(ValueError, match=r'alpha: must be in \[0, 1\], got 1.5'):
    PSKD(alpha=1.5).validate()
  with pytest.raises(ValueError, match=r'temperature: ps_kd adds no weighted term'):
    PSKD(temperature=2.0).validate()


def test_after_an_epoch_the_table_holds_the_softmax_of_the_examples_seen():
  """40 synthetic examples, batch 16: 2 steps per epoch over 8 devices, 8 examples dropped."""
  data_config = common.data_config('synthetic', source='synthetic', num_examples=40,
                                   num_classes=5, synthetic_shape=(16, 16, 3), image_size=16,
                                   crop_padding=2)
  source = data_lib.create_source(data_config, 'train')
  loader = data_lib.TrainLoader(source, data_config, global_batch=16, seed=3,
                                **data_lib.loader_options(PSKD.needs))
  mesh = parallel.create_mesh()
  model = tiny_net.TinyNet(num_classes=5)
  configured = methods.create_methods({'ps_kd': {}})
  run = methods.RunInfo(num_examples=40, num_classes=5, steps_per_epoch=2, num_epochs=3,
                        num_devices=8)
  optim_config = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, nesterov=False,
                                                weight_decay=0.0, lr_boundaries=(),
                                                lr_decay=0.1, warmup_epochs=0))
  tx = optim.make_optimizer(optim_config, optim.make_lr_schedule(optim_config, 2))
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx,
                                    methods=configured, run=run),
                  out_shardings=state_lib.shardings(mesh, configured))(
                      state_lib.init_key(0), jnp.zeros((1, 16, 16, 3)))
  train_step = step_lib.make_train_step(model, tx, configured, seed=0,
                                        lr_schedule=optim.make_lr_schedule(optim_config, 2),
                                        mesh=mesh, run=run)
  train_probs = jax.jit(lambda v, x: jax.nn.softmax(
      model.apply(v, x, train=True, mutable=['batch_stats'])[0]))
  expected = np.zeros((1024, 5), np.float32)  # rows padded to lcm(1024, 8)
  for step in range(2):
    batch = loader.batch(step)
    batch['images'] = augment.normalize(batch['images'], data_config.mean, data_config.std)
    expected[batch['index']] = train_probs(state.variables, batch['images'])  # before update
    state, _ = train_step(state, parallel.to_global(batch, mesh))
  table = state.method_states['ps_kd']['table']
  assert table.sharding.spec == jax.sharding.PartitionSpec('data', None)
  assert {s.data.shape for s in table.addressable_shards} == {(128, 5)}  # 1/8 per device
  seen = np.concatenate([loader.batch(s)['index'] for s in range(2)])
  assert len(set(seen.tolist())) == 32
  np.testing.assert_allclose(np.asarray(table), expected, rtol=1e-5, atol=1e-7)


def _trainer_config():
  config = common.recipe()
  config.methods.ps_kd = dict(common.PS_KD)
  common.smoke(config)  # 64 examples, batch 16: 4 steps per epoch, 2 epochs
  config.data.synthetic_shape, config.data.image_size, config.data.crop_padding = (16, 16, 3), 16, 2
  return config


def _restore(workdir, config):
  mesh = parallel.create_mesh()
  configured = methods.create_methods(config.methods)
  run = methods.RunInfo(num_examples=64, num_classes=config.data.num_classes,
                        steps_per_epoch=4, num_epochs=2, num_devices=8)
  tx = optim.make_optimizer(config.optim, optim.make_lr_schedule(config.optim, 4))
  target = state_lib.create_abstract_state(trainer.create_model(config), tx, config.seed,
                                           jnp.zeros((1, 16, 16, 3)), mesh, configured, run)
  checkpointer = checkpoint.Checkpointer(workdir, 3)
  try:
    return checkpointer.restore(target)
  finally:
    checkpointer.close()


def test_interrupted_and_resumed_run_equals_the_straight_run_table_included(tmp_path):
  config = _trainer_config()
  straight = trainer.train_and_evaluate(config, str(tmp_path / 'straight'))
  resumed_dir = str(tmp_path / 'resumed')
  assert trainer.train_and_evaluate(config, resumed_dir, stop_after_step=5) == {}
  resumed = trainer.train_and_evaluate(config, resumed_dir)
  (a, step_a), (b, step_b) = _restore(str(tmp_path / 'straight'), config), _restore(resumed_dir,
                                                                                    config)
  assert step_a == step_b == 8
  table = a.method_states['ps_kd']['table']
  assert table.sharding.spec == jax.sharding.PartitionSpec('data', None)
  assert 0 < float(jnp.sum(table)) <= 64  # the seen rows sum to 1 each
  jax.tree.map(np.testing.assert_array_equal, a.method_states, b.method_states)
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.opt_state, b.opt_state)
  assert resumed['test/top1'] == straight['test/top1']
