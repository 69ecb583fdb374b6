"""`corruption`: spec vector C1 through the evaluator on a synthetic CIFAR-100-C folder (the real
layout, n = 20 per severity) and a fixed-logit fake model, severity slicing, the label sanity
asserts, missing data (skipped with what to download) and CIFAR-10-C through tfds mock data."""
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sdd_jax.data import DataError
from sdd_jax.data import corrupted
from sdd_jax.evaluators import base
from sdd_jax.evaluators import corruption

N = 20  # images per severity block (the real files: 10,000)
C1 = {'gaussian_noise': [0.9, 0.8, 0.7, 0.6, 0.5], 'fog': [1.0, 0.9, 0.6, 0.4, 0.1]}


def _table():
  """Code = label + 10 * correct: the fake model predicts the label iff `correct`."""
  table = np.zeros((20, 10), np.float32)
  for label in range(10):
    table[label, (label + 1) % 10] = 1.0
    table[label + 10, label] = 1.0
  return table


def _fixture(fake, root, accuracies, labels, tile=True):
  """<root>/<name>.npy uint8 [5N, 32, 32, 3] with the first round(a * N) rows of each severity
  block predicted correctly, and <root>/labels.npy."""
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for name, accs in accuracies.items():
    codes = np.concatenate([labels + 10 * (np.arange(N) < round(a * N)) for a in accs])
    np.save(root / f'{name}.npy', fake.coded_images(codes, rng))
  tiled = np.tile(labels, 5).astype(np.uint8)
  if not tile:
    tiled[-1] = (tiled[-1] + 1) % 10
  np.save(root / 'labels.npy', tiled)
  return root


@pytest.fixture
def setup(fake, tmp_path):
  labels = np.random.default_rng(1).integers(0, 10, N)
  clean = fake.array_source(fake.coded_images(labels + 10), labels)
  ctx = fake.ctx(tmp_path, clean, batch_size=8)
  return ctx, labels, fake.fixed_logits(_table())


def test_c1_through_the_evaluator(fake, tmp_path, setup):
  ctx, labels, predict = setup
  path = _fixture(fake, tmp_path / 'CIFAR-100-C', C1, labels)
  out = corruption.Corruption({'path': str(path), 'corruptions': ('gaussian_noise', 'fog')})(
      ctx, predict)
  expected = {'corruption/clean': 100, 'corruption/mca15': 65, 'corruption/mca19': 65,
              'corruption/gaussian_noise': 70, 'corruption/fog': 60, 'corruption/count': N,
              'corruption/nonfinite': 0,
              **{f'corruption/severity_{s + 1}': v for s, v in enumerate([95, 85, 65, 50, 30])}}
  assert out == pytest.approx(expected)
  record = json.loads((tmp_path / 'evals/corruption/results.json').read_text())
  assert record['metrics'] == pytest.approx(expected)
  for name, accs in C1.items():
    assert record['details']['accuracy'][name] == pytest.approx([100 * a for a in accs])
  assert record['details']['num_benchmark'] == 2 and record['normalisation']['std'] == list(
      fake.STD)


def test_mca15_leaves_out_the_extras(fake, tmp_path, setup):
  ctx, labels, predict = setup
  path = _fixture(fake, tmp_path / 'c', {'fog': C1['fog'], 'spatter': [0.5] * 5}, labels)
  out = corruption.Corruption({'path': str(path), 'corruptions': 'fog,spatter'})(ctx, predict)
  assert out['corruption/mca15'] == pytest.approx(60)
  assert out['corruption/mca19'] == pytest.approx(55)
  assert out['corruption/spatter'] == pytest.approx(50)


def test_label_sanity_asserts(fake, tmp_path, setup):
  ctx, labels, predict = setup
  section = {'corruptions': ('fog',)}
  path = _fixture(fake, tmp_path / 'untiled', {'fog': C1['fog']}, labels, tile=False)
  with pytest.raises(DataError, match='not one label block tiled 5 times'):
    corruption.Corruption({**section, 'path': str(path)})(ctx, predict)
  other = (labels + 1) % 10
  path = _fixture(fake, tmp_path / 'other', {'fog': C1['fog']}, other)
  with pytest.raises(DataError, match='does not match the eval split.*check_labels=False'):
    corruption.Corruption({**section, 'path': str(path)})(ctx, predict)
  out = corruption.Corruption({**section, 'path': str(path), 'check_labels': False})(ctx, predict)
  assert out['corruption/fog'] == pytest.approx(60)  # self-consistent, only not this test set's
  np.save(tmp_path / 'other/labels.npy', np.zeros(7, np.uint8))
  with pytest.raises(DataError, match=r'expected \[5 \* n\]'):
    corruption.Corruption({**section, 'path': str(path)})(ctx, predict)


def test_missing_data_is_skipped_with_what_to_download(fake, tmp_path, setup):
  ctx, labels, predict = setup
  with pytest.raises(base.Skipped, match=r'CIFAR-100-C folder .* not found.*CIFAR-100-C\.tar.*'
                                         r'zenodo.*config\.evals\.corruption\.path'):
    corruption.Corruption({'path': str(tmp_path / 'nowhere')})(ctx, predict)
  with pytest.raises(base.Skipped, match='not found'):
    corruption.Corruption()(ctx, predict)  # path '' by default
  path = _fixture(fake, tmp_path / 'c', {'fog': C1['fog']}, labels)
  with pytest.raises(base.Skipped, match=r'lacks gaussian_noise\.npy'):
    corruption.Corruption({'path': str(path), 'corruptions': ('fog', 'gaussian_noise')})(
        ctx, predict)
  with pytest.raises(base.Skipped, match=r'tfds build cifar10_corrupted/frosted_glass_blur_1'):
    corruption.Corruption({'dataset': 'cifar10_corrupted', 'corruptions': ('glass_blur',),
                           'data_dir': str(tmp_path / 'no_tfds')})(ctx, predict)
  with pytest.raises(ValueError, match="unknown \\['blur'\\]"):
    corruption.Corruption({'path': str(path), 'corruptions': ('blur',)})(ctx, predict)


def test_reader_slices_severity_blocks(fake, tmp_path):
  labels = np.arange(N) % 10
  path = _fixture(fake, tmp_path / 'c', {'fog': C1['fog']}, labels)
  folder = corrupted.CorruptedFolder(str(path), ('fog',), 10)
  whole = np.load(path / 'fog.npy')
  for severity in range(1, 6):
    source = folder.severity_source('fog', severity)
    np.testing.assert_array_equal(source.get_batch(np.arange(N))['images'],
                                  whole[(severity - 1) * N:severity * N])
    np.testing.assert_array_equal(source.labels(), labels)


def test_cifar10_c_through_tfds_mock_data(fake, tmp_path, setup, monkeypatch):
  ctx, _, _ = setup
  assert corrupted.tfds_config('elastic_transform', 5) == 'cifar10_corrupted/elastic_5'
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'is_prepared', lambda self: True)
  rng = np.random.default_rng(0)
  predict = fake.linear(rng.normal(size=(10, 3)), rng.normal(size=10))
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    out = corruption.Corruption({'dataset': 'cifar10_corrupted',
                                 'corruptions': ('glass_blur', 'saturate')})(ctx, predict)
  assert out['corruption/count'] == 6
  assert {'corruption/glass_blur', 'corruption/saturate', 'corruption/mca19'} <= set(out)
