"""Collapse diagnostics: term shares, confidence / top-1, dead pooled features against NumPy on
hand-made numbers; the once-only collapse warning on hand-made epoch metrics and in one smoke run
that sits at chance. The keys in every config's smoke run's metrics.jsonl (SD-Dropout, CE and
each method): tests/configs_test.py."""
import dataclasses
import logging
import os
from typing import ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common
from sdd_jax.metrics import diagnostics
from sdd_jax.workdir import writers as metric_writers
from tests import workdirs
from sdd_jax import methods
from sdd_jax.classification import trainer
from sdd_jax.methods import base


@dataclasses.dataclass(frozen=True)
class _Fixed(base.Method):
  """A fake method whose term is fixed: mean(values)."""
  values: tuple = (0.0,)
  name: ClassVar[str] = 'fixed'

  def loss(self, ctx, key):
    return jnp.array(self.values), {}


@dataclasses.dataclass(frozen=True)
class _Other(_Fixed):
  name: ClassVar[str] = 'other'


# --- term shares --------------------------------------------------------------------------

def test_term_shares_of_combine_against_numpy_and_sum_to_one():
  ce = np.array([1.0, 1.4])  # mean 1.2
  chosen = [_Fixed(weight=0.5, temperature=3.0, values=(0.2, 0.6)),   # 0.5 * 9 * 0.4 = 1.8
            _Other(weight=0.1, temperature=4.0, values=(0.5, 0.0))]   # 0.1 * 16 * 0.25 = 0.4
  total, metrics = jax.jit(lambda c: methods.combine(chosen, None, jax.random.key(0), c))(ce)
  weighted = np.array([1.2, 0.5 * 9 * 0.4, 0.1 * 16 * 0.25])
  np.testing.assert_allclose(total, weighted.sum(), rtol=1e-6)
  shares = [metrics[f'train/share_{n}'] for n in ('ce', 'fixed', 'other')]
  np.testing.assert_allclose(shares, weighted / weighted.sum(), rtol=1e-6)
  np.testing.assert_allclose(np.sum(shares), 1.0, rtol=1e-6)


def test_term_shares_alone_and_with_a_zero_or_negative_total():
  shares = jax.jit(diagnostics.term_shares)({'ce': 2.0, 'a': -0.5}, 1.5)
  np.testing.assert_allclose([shares['train/share_ce'], shares['train/share_a']],
                             [2.0 / 1.5, -0.5 / 1.5], rtol=1e-6)
  zero = jax.jit(diagnostics.term_shares)({'ce': 0.5, 'a': -0.5}, jnp.float32(0.0))
  assert [float(v) for v in zero.values()] == [0.0, 0.0]  # a zero total: 0, not NaN or inf
  _, ce_only = methods.combine([], None, jax.random.key(0), jnp.array([0.3, 0.5]))
  assert set(ce_only) == {'train/loss', 'train/loss_ce', 'train/share_ce'}
  np.testing.assert_allclose(ce_only['train/share_ce'], 1.0)


# --- confidence and accuracy ---------------------------------------------------------------

def test_confidence_and_top1_on_fixed_logits_against_numpy():
  logits = np.array([[2.0, 0.0, 0.0],     # right, p_max = e^2 / (e^2 + 2)
                     [0.0, 0.0, 0.0],     # uniform: 1/3; argmax 0, wrong
                     [0.0, 5.0, 1.0],     # wrong
                     [-1.0, -1.0, 3.0]], np.float32)  # right
  labels = np.array([0, 2, 0, 2])
  features = np.ones((4, 3), np.float32)
  metrics = jax.jit(diagnostics.batch_metrics)(jnp.asarray(logits, jnp.bfloat16), features,
                                               labels)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  np.testing.assert_allclose(metrics['train/confidence'], 100 * probs.max(-1).mean(), rtol=1e-2)
  np.testing.assert_allclose(diagnostics.confidence(logits), 100 * probs.max(-1).mean(),
                             rtol=1e-6)
  assert metrics['train/confidence'].dtype == jnp.float32
  assert float(metrics['train/top1']) == 50.0
  assert float(metrics['train/dead_features']) == 0.0


# --- dead pooled features ------------------------------------------------------------------

def test_dead_feature_fraction_on_a_hand_made_matrix():
  features = np.array([[0.0, 0.0, 1.0, 0.3, 0.0],
                       [0.0, 2.0, 0.5, 0.0, 0.0],
                       [0.0, 0.0, 0.1, 0.0, 0.0],
                       [0.0, 0.0, 0.7, 0.0, 1e-30]], np.float32)
  # column 0 is dead; 1 and 3 are zero except one example; 4 only by a denormal: not dead.
  value = jax.jit(diagnostics.dead_feature_fraction)(features)
  np.testing.assert_allclose(value, np.mean(np.all(features == 0, axis=0)))
  np.testing.assert_allclose(value, 1 / 5, rtol=1e-7)
  assert float(diagnostics.dead_feature_fraction(np.zeros((3, 4)))) == 1.0


# --- the once-only collapse warning --------------------------------------------------------

def _epoch(top1, shares):
  return {'train/top1': top1, 'train/loss': 2.3,
          **{f'train/share_{k}': v for k, v in shares.items()}}


COLLAPSED = dict(top1=10.0, shares={'ce': 0.2, 'sd_dropout': 0.8})


@pytest.mark.parametrize('top1,shares,fires', [
    (10.0, {'ce': 0.2, 'sd_dropout': 0.8}, True),
    (14.9, {'ce': 0.4, 'sd_dropout': 0.6}, True),
    (15.0, {'ce': 0.2, 'sd_dropout': 0.8}, False),   # 1.5 x chance (10 classes) is not near
    (60.0, {'ce': 0.1, 'sd_dropout': 0.9}, False),   # learning: the term may dominate
    (10.0, {'ce': 0.7, 'sd_dropout': 0.3}, False),   # CE dominates
    (10.0, {'ce': 0.5, 'sd_dropout': 0.5}, False),   # exactly half is not above half
    (10.0, {'ce': 0.4, 'cs_kd': 0.3, 'sd_dropout': 0.3}, False),  # no single term dominates
    (10.0, {'ce': 1.0}, False),                       # plain CE
])
def test_collapse_message_rule(top1, shares, fires):
  message = diagnostics.collapse_message(3, _epoch(top1, shares), num_classes=10)
  assert (message is not None) == fires
  if fires:
    assert 'epoch 3' in message and 'sd_dropout' in message
    assert 'methods.sd_dropout.weight' in message


def test_collapse_watch_fires_once_on_epoch_means(caplog):
  watch = diagnostics.CollapseWatch(num_classes=10, steps_per_epoch=4)
  healthy, collapsed = _epoch(50.0, COLLAPSED['shares']), _epoch(**COLLAPSED)
  ce_dominates = _epoch(10.0, {'ce': 0.9, 'sd_dropout': 0.1})
  seen = []
  with caplog.at_level(logging.WARNING):
    for step, means in [(2, healthy), (4, healthy),          # epoch 1: above chance
                        (6, ce_dominates), (8, ce_dominates),  # epoch 2: CE dominates
                        (10, collapsed),                     # mid-epoch: not judged yet
                        (12, collapsed),                     # epoch 3: fires
                        (14, collapsed), (16, collapsed)]:   # epoch 4: not again
      seen.append(watch.observe(step, means))
  assert seen == [{}] * 5 + [{diagnostics.WARNING_KEY: 1.0}] + [{}] * 2
  warnings = [r for r in caplog.records if 'collapse?' in r.getMessage()]
  assert len(warnings) == 1 and 'epoch 3' in warnings[0].getMessage()
  assert watch.fired


def test_collapse_watch_weighs_flushes_by_their_steps():
  # One step at 40% then three at 5%: epoch mean (40 + 3 * 5) / 4 = 13.75% < 15% (fires);
  # the unweighted mean of the two flushes, 22.5%, would not.
  watch = diagnostics.CollapseWatch(num_classes=10, steps_per_epoch=4, start_step=4)
  assert watch.observe(5, _epoch(40.0, COLLAPSED['shares'])) == {}
  assert watch.observe(8, _epoch(5.0, COLLAPSED['shares'])) == {diagnostics.WARNING_KEY: 1.0}
  # Shares likewise: 3 steps at 0.3 and 1 at 0.9 average 0.45 (no warning; unweighted 0.6),
  # 3 steps at 0.7 and 1 at 0.1 average 0.55 (a warning; unweighted 0.4).
  for first, last, fires in ((0.3, 0.9, False), (0.7, 0.1, True)):
    watch = diagnostics.CollapseWatch(num_classes=10, steps_per_epoch=4)
    assert watch.observe(3, _epoch(5.0, {'ce': 1 - first, 'x': first})) == {}
    assert (watch.observe(4, _epoch(5.0, {'ce': 1 - last, 'x': last})) != {}) == fires


def test_the_progress_line_shows_confidence_and_the_warning(capsys):
  writer = metric_writers.ProgressWriter(total_steps=8)
  writer.write_scalars(4, {'train/loss': 2.0, 'train/top1': 10.0, 'train/confidence': 12.5,
                           diagnostics.WARNING_KEY: 1.0})
  line = capsys.readouterr().err
  assert 'confidence 12.5' in line and 'collapse_warning 1' in line


# --- end to end: the trainer logs the warning once and goes on -----------------------------
# (The keys in every config's smoke run's metrics.jsonl, SD-Dropout and CE included, are
# checked by tests/configs_test.py::test_smoke_run.)

def test_a_run_at_chance_under_a_dominant_term_warns_once_and_goes_on(tmp_path, caplog):
  config = common.recipe()
  config.methods.sd_dropout = dict(common.SD_DROPOUT, weight=1000.0)  # the term dominates
  common.smoke(config)  # 10 classes, 64 examples, batch 16: 4 steps per epoch, 2 epochs
  config.data.synthetic_shape = (16, 16, 3)
  config.data.image_size = 16
  config.optim.lr = 1e-9  # the network stays as initialised: near chance
  config.evals = ml_collections.ConfigDict()
  config.checkpoint_every_epochs = 2  # one checkpoint, at the end
  workdir = str(tmp_path / 'run')
  with caplog.at_level(logging.WARNING):
    summary = trainer.train_and_evaluate(config, workdir)
  assert summary['steps'] == 8  # a warning, not a stop
  records = workdirs.read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
  train = [r for r in records if 'train/loss' in r]
  assert [r['step'] for r in train] == [2, 4, 6, 8]
  for epoch in (train[:2], train[2:]):  # the setting meets the rule in both epochs ...
    assert np.mean([r['train/top1'] for r in epoch]) < 15.0
    assert np.mean([r['train/share_sd_dropout'] for r in epoch]) > 0.5
  # ... and the warning comes once, at the end of the first.
  assert [r['step'] for r in records if diagnostics.WARNING_KEY in r] == [4]
  warnings = [r.getMessage() for r in caplog.records if 'collapse?' in r.getMessage()]
  assert len(warnings) == 1 and 'epoch 1' in warnings[0] and 'sd_dropout' in warnings[0]
