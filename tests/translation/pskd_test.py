"""PS-KD for sequences: the alpha schedule, the teacher refreshed exactly at epoch boundaries
inside the jitted step, alpha_T = 0 equal to label smoothing bit for bit, and 8 devices equal
to 1 (a few train steps of a tiny Transformer on fixed batches)."""
import jax
import ml_collections
import numpy as np
import pytest

from configs import common
from sdd_jax import parallel
from sdd_jax.translation import model as model_lib
from sdd_jax.translation import optim
from sdd_jax.translation import pskd
from sdd_jax.translation import step as step_lib
from sdd_jax.translation import tokens
from sdd_jax.translation import trainer

VOCAB, STEPS_PER_EPOCH, NUM_EPOCHS = 24, 2, 3


def test_alpha_schedule_is_zero_in_the_first_epoch_then_alpha_t_over_t():
  steps = np.arange(4 * 3)  # 3 steps per epoch, 4 epochs, alpha_T 0.8
  alphas = np.asarray(jax.jit(lambda s: pskd.alpha_at(s, 0.8, 3, 4))(steps))
  expected = np.repeat([0.0, 0.8 * 2 / 4, 0.8 * 3 / 4, 0.8], 3)
  np.testing.assert_allclose(alphas, expected, rtol=1e-6)
  assert np.all(alphas[:3] == 0)  # epoch 1: one-hot (or label-smoothed) targets


def _config(methods):
  config = common.translation_smoke(common.translation_recipe('de', 'en'))
  config.methods = ml_collections.ConfigDict(methods)
  config.optim.warmup_steps = 2
  config.num_epochs = NUM_EPOCHS
  return config


def _batches(count=STEPS_PER_EPOCH * NUM_EPOCHS, rows=8, length=6, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    src = rng.integers(4, VOCAB, size=(rows, length)).astype(np.int32)
    tgt = rng.integers(4, VOCAB, size=(rows, length + 1)).astype(np.int32)
    for r in range(rows):  # right padding of random lengths
      src[r, rng.integers(2, length + 1):] = tokens.PAD
      tgt[r, rng.integers(2, length + 2):] = tokens.PAD
    out.append({'src': src, 'tgt_in': tgt[:, :-1], 'tgt_out': tgt[:, 1:]})
  return out


def _run(config, mesh, batches):
  """[(state after each step, metrics)] of the trainer's own state and step."""
  lr_schedule = optim.make_lr_schedule(config.optim)
  tx = optim.make_optimizer(config.optim, lr_schedule)
  model = model_lib.create_model(config.model, VOCAB)
  sample = np.ones((1, 2), np.int32)
  state = trainer.create_state(model, tx, config, sample, sample, mesh)
  epsilon, alpha = trainer.method_settings(config)
  step = step_lib.make_train_step(model, tx, seed=config.seed, lr_schedule=lr_schedule,
                                  mesh=mesh, epsilon=epsilon, pskd_alpha=alpha,
                                  steps_per_epoch=STEPS_PER_EPOCH, num_epochs=NUM_EPOCHS)
  history = [(jax.device_get(state), None)]
  for batch in batches:
    state, metrics = step(state, parallel.to_global(batch, mesh))
    history.append((jax.device_get(state), jax.device_get(metrics)))
  return history


@pytest.fixture(scope='module')
def pskd_run():
  return _run(_config({'label_smoothing': {'epsilon': 0.1}, 'ps_kd': {'alpha': 0.8}}),
              parallel.create_mesh(), _batches())


def _equal(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_the_teacher_is_the_params_at_the_end_of_the_previous_epoch(pskd_run):
  for steps_done, (state, _) in enumerate(pskd_run):
    epoch_end = steps_done // STEPS_PER_EPOCH * STEPS_PER_EPOCH
    teacher = state.method_states['ps_kd']['teacher']
    assert _equal(teacher, pskd_run[epoch_end][0].params), steps_done
    # Inside an epoch the teacher is not the current params (the first update has lr 0).
    if steps_done % STEPS_PER_EPOCH and steps_done > 1:
      assert not _equal(teacher, state.params), steps_done
  alphas = [float(m['train/ps_kd_alpha']) for _, m in pskd_run[1:]]
  np.testing.assert_allclose(alphas, [0, 0, 0.8 * 2 / 3, 0.8 * 2 / 3, 0.8, 0.8], rtol=1e-6)


def test_pskd_with_alpha_zero_trains_exactly_as_label_smoothing():
  batches = _batches(count=4)
  mesh = parallel.create_mesh()
  ls = _run(_config({'label_smoothing': {'epsilon': 0.1}}), mesh, batches)
  zero = _run(_config({'label_smoothing': {'epsilon': 0.1}, 'ps_kd': {'alpha': 0.0}}), mesh,
              batches)
  for (a, ma), (b, mb) in zip(ls[1:], zero[1:]):
    assert _equal(a.params, b.params) and _equal(a.opt_state, b.opt_state)
    assert ma['train/loss'] == mb['train/loss']


def test_eight_devices_train_as_one(pskd_run):
  """Same losses at every step up to float32 reduction order; params within a fraction of one
  update (Adam's m / sqrt(v) turns reduction-order noise in near-zero gradient coordinates into
  differences of up to ~lr, measured 1e-4 after 6 steps)."""
  one = _run(_config({'label_smoothing': {'epsilon': 0.1}, 'ps_kd': {'alpha': 0.8}}),
             parallel.create_mesh(jax.devices()[:1]), _batches())
  assert len(jax.devices()) == 8
  for (a, ma), (b, mb) in zip(one[1:], pskd_run[1:]):
    np.testing.assert_allclose(ma['train/loss'], mb['train/loss'], rtol=2e-6)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
      np.testing.assert_allclose(x, y, rtol=0, atol=2.5e-4)
