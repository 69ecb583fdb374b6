r"""A test-only task: 1-D regression (y = sin(3x)) with a one-hidden-layer MLP, trained by the
shared loop (`sdd_jax/train/loop.py`). It imports no task package (classification, translation,
detection): what it needs of the library is the shared code, which proves the loop task-agnostic.

It is registered only in the tests, for the length of a block (`sdd_jax.tasks.registered`):
in-process with `with tasks.registered(NAME, TASK):`, and through the real `train.py` with
`python -m tests.train.toy_task --config tests/train/toy_task.py --workdir DIR` (this file is its
own config file: `get_config`).
"""
import pathlib
import runpy
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sdd_jax import parallel
from sdd_jax import tasks
from sdd_jax.config.fields import ConfigError
from sdd_jax.train import loop
from sdd_jax.train import state as state_lib
from sdd_jax.train import throughput
from sdd_jax.workdir import checkpoint

NAME = 'toy'
MODULE = 'tests.train.toy_task'
TASK = tasks.Task(MODULE, MODULE, ('test/mse', 'wall_seconds'), MODULE)


def get_config():
  """64 examples, batch 16: 4 steps an epoch, 3 epochs."""
  return ml_collections.ConfigDict(dict(
      task=NAME, seed=0, num_epochs=3, batch_size=16, num_examples=64, hidden=16, lr=0.05,
      log_every_steps=2, checkpoint_every_epochs=1, max_to_keep=5, profile_steps=()))


def validate(config) -> None:
  unknown = sorted(set(config.keys()) ^ set(get_config().keys()))
  if unknown:
    raise ConfigError(f'config: unknown or missing field(s) {unknown} of the toy task')


def create_data(seed: int, num_examples: int):
  """(x, y) of the training set, each [num_examples, 1]; the test set is a grid of 33 points."""
  x = np.random.default_rng(seed).uniform(-1, 1, (num_examples, 1)).astype(np.float32)
  return x, np.sin(3 * x)


def create_test_set():
  """(x, y) of 33 points on [-1, 1]."""
  x = np.linspace(-1, 1, 33, dtype=np.float32)[:, None]
  return x, np.sin(3 * x)


def forward(params, x):
  """[batch, 1] -> [batch, 1] (jnp or np arrays)."""
  xp = np if isinstance(params['w1'], np.ndarray) else jnp
  return xp.tanh(x @ params['w1'] + params['b1']) @ params['w2'] + params['b2']


def train_and_evaluate(config, workdir: str, *, stop_after_step: int = 0):
  start_time = time.time()
  validate(config)
  hooks = ToyHooks(config, parallel.create_mesh())
  return loop.run(config, workdir, hooks, start_time=start_time, stop_after_step=stop_after_step)


class ToyHooks(loop.Hooks):
  """The toy task's part of the loop: a replicated MLP, examples/s, the test MSE each epoch."""

  def __init__(self, config, mesh):
    self.config, self.mesh = config, mesh
    self.steps_per_epoch = config.num_examples // config.batch_size
    self.unit = throughput.Unit('examples', per_step=config.batch_size)
    self.x, self.y = create_data(config.seed, config.num_examples)
    self.tx = optax.adam(config.lr)
    self.train_step = jax.jit(self._step)
    self._mse = jax.jit(lambda params, x, y: jnp.mean((forward(params, x) - y) ** 2))

  def create_state(self):
    hidden = self.config.hidden

    def init(key):
      k1, k2 = jax.random.split(key)
      params = {'w1': jax.random.normal(k1, (1, hidden)), 'b1': jnp.zeros(hidden),
                'w2': jax.random.normal(k2, (hidden, 1)) / np.sqrt(hidden), 'b2': jnp.zeros(1)}
      return state_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats={},
                                  opt_state=self.tx.init(params))

    return jax.jit(init, out_shardings=parallel.replicated_sharding(self.mesh))(
        state_lib.init_key(self.config.seed))

  def _step(self, state, batch):
    def loss_fn(params):
      return jnp.mean((forward(params, batch['x']) - batch['y']) ** 2)
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    return state_lib.TrainState(step=state.step + 1, params=optax.apply_updates(state.params,
                                                                                updates),
                                batch_stats={}, opt_state=opt_state), {'train/loss': loss}

  def start(self, state, restored):
    self.test = jax.device_put(create_test_set(), parallel.replicated_sharding(self.mesh))
    return state

  def batches(self, start_step):
    """The batch of a step is a pure function of (seed, step): a permutation per epoch."""
    step, size = start_step, self.config.batch_size
    while True:
      epoch, i = divmod(step, self.steps_per_epoch)
      order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.x))
      rows = order[i * size:(i + 1) * size]
      yield {'x': self.x[rows], 'y': self.y[rows]}
      step += 1

  def evaluate_epoch(self, state, epoch, last):
    return {'test/mse': float(jax.device_get(self._mse(state.params, *self.test)))}

  def evaluate_final(self, state, epochs, writer):
    return epochs or self.evaluate_epoch(state, self.config.num_epochs, True)


def evaluate(workdir: str, config, overrides=None, names=None):
  """`evaluate.py`'s path: the test MSE of the newest checkpoint, in NumPy."""
  del config, overrides, names
  params = checkpoint.read_checkpoint(workdir)['params']
  x, y = create_test_set()
  return {'test/mse': float(np.mean((forward(params, x) - y) ** 2))}


if __name__ == '__main__':  # train.py with the toy task registered
  with tasks.registered(NAME, TASK):
    runpy.run_path(str(pathlib.Path(__file__).resolve().parents[2] / 'train.py'),
                   run_name='__main__')
