"""Sources: npz, folder, synthetic and digits fixtures, the registry and the error messages."""
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from sklearn.datasets import load_digits

from configs.common import data_config
from sdd_jax.data import SOURCES, DataError, TrainLoader, create_source

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The project's shared folder sits beside the repository, here and in CI.
CIFAR10 = os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'cifar10')


def _write_npz(folder, split, n=40, classes=5, shape=(32, 32, 3), seed=0, **extra):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n, *shape), np.uint8)
  y = np.arange(n) % classes
  np.savez(os.path.join(folder, f'{split}.npz'), x=x, y=y, **extra)
  return x, y


def _write_folder(root, split, classes=('cat', 'ant', 'bee'), per_class=3, size=(32, 32)):
  """PNGs in root/<split>/<class>/<i>.png, in scrambled write order; returns {path: pixels}."""
  written = {}
  for c, name in enumerate(classes):
    os.makedirs(os.path.join(root, split, name))
    for i in reversed(range(per_class)):
      pixels = np.full((*size, 3), 10 * c + i, np.uint8)
      path = os.path.join(root, split, name, f'{i}.png')
      Image.fromarray(pixels).save(path)
      written[path] = pixels
  return written


def _check_source_contract(source, num_classes):
  assert len(source) == len(source.labels())
  assert source.num_classes == num_classes
  indices = np.array([len(source) - 1, 0, 1])
  batch = source.get_batch(indices)
  for row, i in enumerate(indices):
    example = source[int(i)]
    assert example['image'].dtype == np.uint8 and example['image'].ndim == 3
    np.testing.assert_array_equal(batch['images'][row], example['image'])
    assert batch['labels'][row] == example['label'] == source.labels()[i]


def test_registry_lists_every_source():
  assert SOURCES.names() == ['digits', 'folder', 'npz', 'synthetic', 'tfds']
  with pytest.raises(ValueError, match='known data sources: digits, folder, npz'):
    create_source(data_config(source='hdf5'), 'train')


def test_npz_source(tmp_path):
  x, y = _write_npz(tmp_path, 'test', classes=5)
  source = create_source(data_config(source='npz', path=str(tmp_path), num_classes=5), 'test')
  _check_source_contract(source, 5)
  np.testing.assert_array_equal(source.get_batch([3, 7])['images'], x[[3, 7]])
  np.testing.assert_array_equal(source.labels(), y)


def test_npz_grayscale_gets_a_channel_axis(tmp_path):
  _write_npz(tmp_path, 'train', shape=(8, 8), classes=2)
  source = create_source(data_config(source='npz', path=str(tmp_path), num_classes=2), 'train')
  assert source[0]['image'].shape == (8, 8, 1)


def test_npz_missing_file_names_path_and_layout(tmp_path):
  config = data_config(source='npz', path=str(tmp_path / 'nowhere'))
  with pytest.raises(DataError, match=r'nowhere/train.npz does not exist; expected .*x \(uint8'):
    create_source(config, 'train')
  with pytest.raises(DataError, match='needs config.data.path'):
    create_source(data_config(source='npz'), 'train')


def test_npz_wrong_num_classes(tmp_path):
  _write_npz(tmp_path, 'train', classes=5)
  with pytest.raises(DataError, match='labels span 0..4 but config.data.num_classes is 3'):
    create_source(data_config(source='npz', path=str(tmp_path), num_classes=3), 'train')
  _write_npz(tmp_path, 'test', classes=5, label_names=np.array(list('abcde')))
  with pytest.raises(DataError, match='names 5 classes .* set num_classes=5'):
    create_source(data_config(source='npz', path=str(tmp_path), num_classes=10), 'test')


def test_folder_source_is_imagefolder_order(tmp_path):
  written = _write_folder(tmp_path, 'train')
  source = create_source(data_config(source='folder', path=str(tmp_path), num_classes=3), 'train')
  _check_source_contract(source, 3)
  assert source.classes == ['ant', 'bee', 'cat']
  expected = sorted(written)  # class folders sorted, then files sorted
  assert source.files == expected
  np.testing.assert_array_equal(source.labels(), [0, 0, 0, 1, 1, 1, 2, 2, 2])
  for i, path in enumerate(expected):
    np.testing.assert_array_equal(source[i]['image'], written[path])


def test_folder_errors(tmp_path):
  with pytest.raises(DataError, match=r'is not a folder.*<path>/<split>/<class name>/<image'):
    create_source(data_config(source='folder', path=str(tmp_path)), 'train')
  _write_folder(tmp_path, 'train')
  with pytest.raises(DataError, match='has 3 class folders but config.data.num_classes is 100'):
    create_source(data_config(source='folder', path=str(tmp_path)), 'train')


def test_synthetic_is_deterministic_and_split_dependent():
  config = data_config(source='synthetic', num_examples=50, num_classes=4,
                       synthetic_shape=(8, 8, 3))
  train, again = create_source(config, 'train'), create_source(config, 'train')
  _check_source_contract(train, 4)
  np.testing.assert_array_equal(train.images, again.images)
  assert not np.array_equal(train.images, create_source(config, 'test').images)
  with pytest.raises(DataError, match='num_examples > 0'):
    create_source(data_config(source='synthetic'), 'train')


def test_digits_split():
  config = data_config(source='digits', num_classes=10)
  train, test = create_source(config, 'train'), create_source(config, 'test')
  _check_source_contract(train, 10)
  assert (len(train), len(test)) == (1437, 360)
  assert train[0]['image'].shape == (8, 8, 1) and train.images.max() == 255
  # train + test is a reordering of all 1,797 digits, each scaled 0..16 -> 0..255.
  digits = load_digits()
  expected = np.round(digits.images * 255 / 16).reshape(1797, -1)
  got = np.concatenate([train.images, test.images]).reshape(1797, -1)
  order_expected, order_got = np.lexsort(expected.T), np.lexsort(got.T)
  np.testing.assert_array_equal(got[order_got], expected[order_expected])
  np.testing.assert_array_equal(np.concatenate([train.labels(), test.labels()])[order_got],
                                digits.target[order_expected])
  with pytest.raises(DataError, match='set num_classes=10'):
    create_source(data_config(source='digits'), 'train')


@pytest.mark.skipif(not os.path.exists(f'{CIFAR10}/test.npz'), reason='no real CIFAR-10 here')
def test_real_cifar10_npz_batch():
  config = data_config(source='npz', path=CIFAR10, num_classes=10)
  source = create_source(config, 'test')
  assert len(source) == 10000 and np.bincount(source.labels()).tolist() == [1000] * 10
  batch = TrainLoader(source, config, global_batch=128, seed=0).batch(0)
  assert batch['images'].shape == (128, 32, 32, 3)
  normalised = (batch['images'] / 255 - np.array(config.mean)) / np.array(config.std)
  assert abs(normalised.mean()) < 0.5  # the CIFAR-10 statistics fit the real images


def test_check_labels_against_numpy():
  from sdd_jax.data.sources import check_labels  # pylint: disable=import-outside-toplevel
  whole = np.array([3.0, 0.0, 9.0, 1.0], np.float32)
  np.testing.assert_array_equal(check_labels(whole, 10, 'n'), [3, 0, 9, 1])
  assert check_labels(np.array([2, 7], np.uint8), 10, 'n').dtype == np.int64
  with pytest.raises(DataError, match=r'^n: label 2 is 1.5, not a whole number'):
    check_labels(np.array([1.0, 2.0, 1.5]), 10, 'n')
  with pytest.raises(DataError, match=r'^n: labels must be class indices int \[N\], got shape '
                                      r'\[2, 3\]; they look one-hot'):
    check_labels(np.eye(3)[:2], 3, 'n')


def test_tfds_label_feature_must_be_a_class_label():
  config = data_config('cifar100', num_classes=100, label_key='id')  # cifar100's id is Text
  with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(DataError, match=r"tfds data set 'cifar100': feature 'id' is Text, not a "
                                        r'ClassLabel'):
      create_source(config, 'train')


def test_folder_header_check_opens_a_sample_of_big_splits(tmp_path):
  """check_files opens every header of a small split and `limit` evenly spaced ones (first and
  last included) of a bigger one."""
  from sdd_jax.data.folder_source import FolderSource  # pylint: disable=import-outside-toplevel
  _write_folder(str(tmp_path), 'train', per_class=3)  # 9 files, sorted: ant/0..2, bee/0..2, cat..
  source = FolderSource(str(tmp_path / 'train'), 3)
  with open(source.files[4], 'wb') as f:  # bee/1.png: index 4 of 9
    f.write(b'text')
  with pytest.raises(DataError, match=r'bee/1.png is not an image'):
    source.check_files()
  source.check_files(limit=2)  # indices 0 and 8 only: the bad file is found when read
  with pytest.raises(DataError, match=r'bee/1.png cannot be read as an image'):
    source[4]  # pylint: disable=pointless-statement
  with open(source.files[8], 'wb') as f:
    f.write(b'text')
  with pytest.raises(DataError, match=r'cat/2.png is not an image'):
    source.check_files(limit=2)
