"""`temperature`: T*, ECE/NLL/top-1 before and after through a fixed-logit fake model, against
NumPy computations by hand; the fit source (cross_fit, validation, holdout) from small fake
sources; padding and masking; the checks of `fit_split`."""
import json
import types

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from sdd_jax.data import sources
from sdd_jax.evaluators import base
from sdd_jax.evaluators import calibration
from sdd_jax.evaluators import temperature
from sdd_jax.metrics import temperature as temperature_lib

CLASSES = 4


def _table(n, seed=0, scale=3.0):
  """`[n, 4]` over-confident logits and labels (correct about 70% of the time)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, CLASSES, n)
  logits = rng.normal(size=(n, CLASSES))
  predicted = np.where(rng.random(n) < 0.7, labels, (labels + 1) % CLASSES)
  logits[np.arange(n), predicted] += 2.0
  return (scale * logits).astype(np.float32), labels


def _nll(logits, labels, t=1.0):
  z = np.asarray(logits, np.float64) / np.asarray(t, np.float64).reshape(-1, 1)
  top = z.max(axis=1, keepdims=True)
  return np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(len(z)), labels]


def _grid_t(logits, labels):
  """argmin over a grid of T (a relative step of 2e-5 around the coarse minimum), by hand."""
  coarse = np.geomspace(0.1, 100, 3001)  # ratio 1.0023
  t0 = coarse[np.argmin([_nll(logits, labels, t).mean() for t in coarse])]
  fine = np.linspace(t0 * 0.998, t0 * 1.002, 201)
  return fine[np.argmin([_nll(logits, labels, t).mean() for t in fine])]


def _ece(logits, labels, t):
  """10-bin ECE (right-closed bins) by its definition, float64."""
  z = np.asarray(logits, np.float64) / np.asarray(t, np.float64).reshape(-1, 1)
  p = np.exp(z - z.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  conf, correct = p.max(axis=1), (p.argmax(axis=1) == labels)
  total = 0.0
  for m in range(10):
    inside = (conf > m / 10) & (conf <= (m + 1) / 10)
    if inside.any():
      total += inside.sum() / len(conf) * abs(correct[inside].mean() - conf[inside].mean())
  return total


@pytest.mark.parametrize('batch_size, num_devices', [(16, 8), (7, 1)])
def test_cross_fit_end_to_end_against_numpy(fake, tmp_path, batch_size, num_devices):
  logits, labels = _table(60)
  config = fake.data_config(num_classes=CLASSES)  # synthetic source: no validation split
  source = fake.array_source(fake.coded_images(np.arange(60)), labels, CLASSES)
  ctx = fake.ctx(tmp_path, source, config, batch_size, jax.devices()[:num_devices])
  ctx = ctx.__class__(**{**vars(ctx), 'cache': {}})
  predict = fake.fixed_logits(logits, config)
  out = temperature.Temperature()(ctx, predict)

  even, odd = np.arange(60) % 2 == 0, np.arange(60) % 2 == 1
  t_even, t_odd = _grid_t(logits[even], labels[even]), _grid_t(logits[odd], labels[odd])
  per_example = np.where(even, t_odd, t_even)
  assert out['temperature/t_star'] == pytest.approx(_grid_t(logits, labels), rel=1e-4)
  assert out['temperature/nll_before'] == pytest.approx(_nll(logits, labels).mean(), rel=1e-5)
  assert out['temperature/nll_after'] == pytest.approx(_nll(logits, labels, per_example).mean(),
                                                       rel=1e-4)
  assert out['temperature/ece_before'] == pytest.approx(100 * _ece(logits, labels, 1.0), abs=1e-4)
  assert out['temperature/ece_after'] == pytest.approx(100 * _ece(logits, labels, per_example),
                                                       abs=2e-2)
  top1 = 100 * np.mean(logits.argmax(axis=1) == labels)
  assert out['temperature/top1_before'] == out['temperature/top1_after'] == pytest.approx(top1)
  assert (out['temperature/count'], out['temperature/nonfinite']) == (60, 0)
  assert out['temperature/nll_after'] < out['temperature/nll_before']

  record = json.loads((tmp_path / 'evals/temperature/results.json').read_text())
  details = record['details']
  assert details['fit'] == 'cross_fit' and details['fit_split'] == config.eval_split
  assert details['folds']['even']['t'] == pytest.approx(t_even, rel=1e-4)
  assert details['folds']['odd']['t'] == pytest.approx(t_odd, rel=1e-4)
  assert details['optimizer']['bounds_T'] == [0.01, 100.0]
  assert (tmp_path / 'evals/temperature/reliability.png').read_bytes()[:4] == b'\x89PNG'
  # One pass: the plain sums calibration needs are in the cache, and agree with its own ECE.
  assert ('accumulate_sums', predict.logits_fn) in ctx.cache
  cal = calibration.Calibration()(ctx, predict)
  assert cal['calibration/ece'] == pytest.approx(out['temperature/ece_before'], abs=1e-4)


def test_scaling_at_t_one_changes_nothing_and_no_t_changes_accuracy():
  """T = 1 gives the raw model's numbers (those of the calibration evaluator's functions, and
  by hand); any T keeps top-1; a non-finite row stays wrong with NLL +inf."""
  logits, labels = _table(50, seed=1)
  before = temperature_lib.score(logits, labels, np.ones(50))
  raw = calibration.metrics
  conf, correct = raw.confidence_and_correct(logits, labels)
  ece, table = raw.ece_from_bin_stats(jax.device_get(raw.calibration_bin_stats(conf, correct)))
  assert before['ece'] == pytest.approx(ece, abs=1e-6) and before['ece'] == pytest.approx(
      _ece(logits, labels, 1.0), abs=1e-6)
  counts = lambda rows: [(r['bin'], r['count']) for r in rows]
  assert counts(before['table']) == counts(table)
  assert before['nll'] == pytest.approx(_nll(logits, labels).mean(), rel=1e-6)
  assert before['top1'] == np.mean(logits.argmax(axis=1) == labels)
  for t in (0.05, 0.7, 3.0, 50.0):
    assert temperature_lib.score(logits, labels, np.full(50, t))['top1'] == before['top1']
  right = (logits.argmax(axis=1) == labels)[np.arange(50) != 3]
  logits[3], labels[3] = np.nan, 0  # a NaN row whose label is the first class: still wrong
  broken = temperature_lib.score(logits, labels, np.full(50, 2.0))
  assert broken['nll'] == np.inf
  assert broken['top1'] == pytest.approx(right.sum() / 50)


def _npz(path, name, images, labels):
  np.savez(path / f'{name}.npz', x=images, y=labels)


def test_a_validation_file_is_the_fit_set(fake, tmp_path):
  logits, labels = _table(100, seed=2)
  valid_logits = logits.copy()
  valid_logits[60:] *= 0.5  # the validation half asks for another T than the test half
  _npz(tmp_path, 'test', fake.coded_images(np.arange(60)), labels[:60])
  _npz(tmp_path, 'validation', fake.coded_images(np.arange(60, 100)), labels[60:])
  config = fake.data_config(num_classes=CLASSES, source='npz', path=str(tmp_path),
                            eval_split='test', train_split='train')
  assert temperature.fit_plan(config, '') == ('validation', 'validation')
  ctx = fake.ctx(tmp_path, sources.create_source(config, 'test'), config, 16)
  out = temperature.Temperature()(ctx, fake.fixed_logits(valid_logits, config))
  assert out['temperature/t_star'] == pytest.approx(_grid_t(valid_logits[60:], labels[60:]),
                                                    rel=1e-4)
  t = out['temperature/t_star']
  assert out['temperature/nll_after'] == pytest.approx(_nll(logits[:60], labels[:60], t).mean(),
                                                       rel=1e-4)
  assert json.loads((tmp_path / 'evals/temperature/results.json').read_text()
                    )['details']['fit'] == 'validation'
  assert temperature.fit_plan(config, 'cross_fit') == ('cross_fit', '')
  config.train_split = 'validation'  # trained on it: auto falls back to cross-fitting
  assert temperature.fit_plan(config, '') == ('cross_fit', '')


def test_the_fit_source_of_tfds_data_sets(fake, tmp_path, monkeypatch):
  config = fake.data_config(num_classes=100, source='tfds', train_split='train[:40]',
                            eval_split='test')
  fake_builder = lambda splits: (lambda *a, **k: types.SimpleNamespace(
      info=types.SimpleNamespace(splits=splits)))
  monkeypatch.setattr(tfds, 'builder', fake_builder({'train': 1, 'test': 1}))
  assert temperature.fit_plan(config, '') == ('cross_fit', '')  # cifar: no validation split
  monkeypatch.setattr(tfds, 'builder', fake_builder({'train': 1, 'validation': 1, 'test': 1}))
  assert temperature.fit_plan(config, '') == ('validation', 'validation')
  assert temperature.fit_plan(config, 'train[40:]') == ('holdout', 'train[40:]')
  monkeypatch.undo()
  rng = np.random.default_rng(4)
  table = (3 * rng.normal(size=(256, 100))).astype(np.float32)  # codes are the mock images' pixels
  with tfds.testing.mock_data(num_examples=30, policy=tfds.testing.MockPolicy.USE_CODE):
    evaluation = sources.create_source(config, 'test')
    held_out = sources.create_source(config, 'train[40:]')
    ctx = fake.ctx(tmp_path, evaluation, config, 16)
    out = temperature.Temperature({'fit_split': 'train[40:]'})(
        ctx, fake.fixed_logits(table, config))
    codes = [held_out[i]['image'][0, 0, 0] for i in range(len(held_out))]
    fit_labels = [held_out[i]['label'] for i in range(len(held_out))]
  assert out['temperature/t_star'] == pytest.approx(_grid_t(table[codes], fit_labels), rel=1e-4)
  assert json.loads((tmp_path / 'evals/temperature/results.json').read_text()
                    )['details']['fit'] == 'holdout'


@pytest.mark.parametrize('fit_split, train_split, message', [
    ('test', 'train', r"fit_split: must not read the eval split 'test'"),
    ('train[30:]', 'train[:40]', r"fit_split: 'train\[30:\]' must be a part of the training set"),
    ('train[90%:]', 'train', r"fit_split: 'train\[90%:\]' must be a part of the training set that "
                             r"data.train_split='train' leaves out"),
])
def test_fit_splits_that_are_not_held_out_are_refused(fake, fit_split, train_split, message):
  config = fake.data_config(source='tfds', train_split=train_split, eval_split='test')
  with pytest.raises(ValueError, match='^config.evals.temperature.' + message):
    temperature.Temperature.check_data({'fit_split': fit_split}, config)
  temperature.Temperature.check_data({'fit_split': 'train[40:]'},
                                     fake.data_config(source='tfds', train_split='train[:40]'))
  assert temperature.slices_overlap('train[:50%]', 'train[50%:]') is False
  assert temperature.slices_overlap('train[:50%]', 'train[45000:]') is None  # % and absolute


def test_no_finite_logits_is_skipped(fake, tmp_path):
  config = fake.data_config(num_classes=CLASSES)
  source = fake.array_source(fake.coded_images(np.arange(4)), [0, 1, 2, 3], CLASSES)
  ctx = fake.ctx(tmp_path, source, config, 8)
  with pytest.raises(base.Skipped, match='no example with finite logits'):
    temperature.Temperature()(ctx, fake.fixed_logits(np.full((4, CLASSES), np.nan), config))
