"""The worked example of docs/method_contract.md: a TEST-ONLY method that owns parameters (a
feature adapter) without owning the forward, combined with SD-Dropout and PS-KD on a model
without BatchNorm (dropout inside), trains on 8 simulated devices, checkpoints and restores."""
import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax import losses
from sdd_jax import methods
from sdd_jax import models
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib
from sdd_jax.methods import base
from sdd_jax.methods.byot import BYOT
from sdd_jax.methods.ps_kd import PSKD
from sdd_jax.methods.sd_dropout import SDDropout
from tests.methods import bn_free_net

NUM_CLASSES, BATCH, SIZE = 5, 16, 16
RUN = methods.RunInfo(num_examples=48, num_classes=NUM_CLASSES, steps_per_epoch=1,
                      num_epochs=3, num_devices=8)
OPTIM = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                                       lr_boundaries=(9,), lr_decay=0.1, warmup_epochs=0))


@dataclasses.dataclass(frozen=True)
class Adapter(base.Method):
  """A residual linear adapter `g = f + f @ W` on the pooled features, trained so that the
  network's own head on `g` agrees with the detached prediction on `f` (KL at T, scaled by
  T**2) and with the targets (CE, unscaled). `W` [D, D] is this method's own parameter,
  `params['adapter']['kernel']`: no forward, no network change, dropped for inference."""
  weight: float = 0.5
  temperature: float = 2.0
  scale: float = 0.01  # initial W ~ scale * N(0, 1)

  name: ClassVar[str] = 'adapter'
  label: ClassVar[str] = 'Adapter'
  term_scales: ClassVar[dict] = {'kl': base.SCALED, 'ce': base.UNSCALED}

  def init_variables(self, model, key, variables, sample_images):
    width = model.apply(variables, sample_images, False, method=model.features).shape[-1]
    return {'params': {'kernel': self.scale * jax.random.normal(key, (width, width))}}

  def loss(self, ctx, key):
    del key
    kernel = ctx.method_variables[self.name]['params']['kernel']
    adapted = ctx.head_fn()(ctx.features + ctx.features @ kernel)
    teacher = jax.lax.stop_gradient(ctx.logits)
    return ({'kl': losses.kl_divergence(teacher, adapted, self.temperature),
             'ce': ctx.cross_entropy(adapted)},
            {'train/adapter_norm': jnp.sum(jnp.square(kernel))})


def _batches(count):
  rng = np.random.default_rng(0)
  out = []
  for step in range(count):
    order = rng.permutation(RUN.num_examples)  # one epoch per step: indices distinct
    out.append({'images': rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32),
                'labels': rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32),
                'index': order[:BATCH].astype(np.int32)})
  return out


def test_adapter_with_sd_dropout_and_ps_kd_trains_checkpoints_and_restores(tmp_path):
  mesh = parallel.create_mesh()
  model = bn_free_net.BNFreeNet(num_classes=NUM_CLASSES)
  configured = [Adapter(), PSKD(), SDDropout(position=2, weight=0.1)]
  methods.check_combination(configured)
  schedule = optim.make_lr_schedule(OPTIM, RUN.steps_per_epoch)
  tx = optim.make_optimizer(OPTIM, schedule)
  sample = jnp.zeros((1, SIZE, SIZE, 3))
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx,
                                    methods=configured, run=RUN),
                  out_shardings=state_lib.shardings(mesh, configured))(
                      state_lib.init_key(0), sample)
  assert set(state.batch_stats) == set() and 'adapter' in state.params
  kernel0 = np.asarray(state.params['adapter']['kernel'])
  assert kernel0.shape == (32, 32) and np.abs(kernel0).max() > 0
  train_step = step_lib.make_train_step(model, tx, configured, seed=0, lr_schedule=schedule,
                                        mesh=mesh, run=RUN)
  batches = [parallel.to_global(b, mesh) for b in _batches(3)]
  history = []
  for batch in batches[:2]:
    state, metrics = train_step(state, batch)
    history.append(jax.device_get(metrics))
  checkpointer = checkpoint_lib.Checkpointer(str(tmp_path), max_to_keep=2)
  checkpointer.save(state)
  checkpointer.close()
  saved = jax.device_get(state)
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                        state)
  straight, _ = train_step(state, batches[2])  # donates `state`
  straight = jax.device_get(straight)

  # The adapter is trained (optimised with the network) and its terms are weighed by combine.
  assert not np.allclose(saved.params['adapter']['kernel'], kernel0)
  for m in history:
    np.testing.assert_allclose(
        m['train/loss'], m['train/loss_ce'] + 0.5 * 4.0 * m['train/loss_adapter']
        + 0.1 * 9.0 * m['train/loss_sd_dropout'], rtol=1e-5)
  assert float(history[1]['train/ps_kd_alpha']) > 0  # epoch 1: PS-KD's targets in force
  assert np.abs(saved.method_states['ps_kd']['table']).sum() > 0

  # Restored bitwise (the adapter's parameters and their momentum included) ...
  restored, step = checkpoint_lib.Checkpointer(str(tmp_path), max_to_keep=2).restore(target)
  assert step == 2
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), saved)
  # ... and the resumed step equals the straight one (dropout and masks drawn from the step).
  resumed, _ = train_step(restored, batches[2])
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed), straight)

  # Inference runs the plain network: the adapter is dropped.
  plain = jax.eval_shape(functools.partial(model.init, train=False), state_lib.init_key(0),
                         sample)
  inference = methods.inference_variables(configured, state.variables)
  assert jax.tree.structure(inference) == jax.tree.structure(plain)


def test_methods_owning_variables_compose():
  """The adapter beside BYOT (which owns the forward and variables of its own): both sets are
  initialised, each under its method's name, and inference drops both (shapes only)."""
  model = models.get_model('resnet18_cifar', num_classes=NUM_CLASSES, width=4,
                           stage_sizes=(1, 1, 1, 1))
  configured = [Adapter(), BYOT()]
  sample = jnp.zeros((1, 32, 32, 3))
  shapes = jax.eval_shape(functools.partial(methods.init_variables, configured, model),
                          state_lib.init_key(0), sample)
  plain = jax.eval_shape(functools.partial(model.init, train=False), state_lib.init_key(0),
                         sample)
  assert {'adapter', 'byot'} <= set(shapes['params']) and 'byot' in shapes['batch_stats']
  assert shapes['params']['adapter']['kernel'].shape == (32, 32)
  inference = methods.inference_variables(configured, shapes)
  assert jax.tree.structure(inference) == jax.tree.structure(plain)
