"""The tfds source: tfds.testing.mock_data on the real builders, a real array_record data set built
here offline, and the missing-data messages. No test may reach a download."""
import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs.common import data_config
from sdd_jax.data import DataError, TrainLoader, create_eval_batches, create_source


class SddJaxTinyImages(tfds.core.GeneratorBasedBuilder):
  """A real TFDS builder (registered as 'sdd_jax_tiny_images'): 12 train and 5 test PNGs of
  varying size, 3 classes. PNG bytes are stored as they are, so building needs no TensorFlow."""
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 3)),
        'label': tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(12), 'test': self._generate_examples(5)}

  def _generate_examples(self, n):
    for i in range(n):
      buffer = io.BytesIO()
      Image.fromarray(tiny_image(n, i)).save(buffer, format='PNG')
      yield i, {'image': buffer.getvalue(), 'label': i % 3}


def tiny_image(n, i):
  return np.random.default_rng([n, i]).integers(0, 256, (10 + i, 8 + 2 * i, 3), np.uint8)


def test_mock_cifar100_through_the_real_code_path():
  config = data_config('cifar100', num_classes=100)
  with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
    source = create_source(config, 'train')
    assert len(source) == 24 and source.num_classes == 100
    example = source[3]
    assert example['image'].shape == (32, 32, 3) and example['image'].dtype == np.uint8
    np.testing.assert_array_equal(source.labels(), [source[i]['label'] for i in range(24)])
    batch = TrainLoader(source, config, global_batch=8, seed=0, pairs=True).batch(2)
  assert batch['images'].shape == batch['pair_images'].shape == (8, 32, 32, 3)
  np.testing.assert_array_equal(source.labels()[batch['pair_index']], batch['labels'])


@pytest.mark.parametrize('name, num_classes', [('caltech_birds2011', 200), ('stanford_dogs', 120),
                                               ('imagenet2012', 1000)])
def test_mock_variable_size_data_sets_with_imagenet_augment(name, num_classes):
  config = data_config(name, num_classes=num_classes, augment='imagenet', image_size=16,
                       eval_resize=18, train_split='train[:90%]')
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    source = create_source(config, config.train_split)
    assert len({source[i]['image'].shape for i in range(6)}) > 1  # odd sizes are the point
    batch = TrainLoader(source, config, global_batch=4, seed=1, views=2).batch(0)
    eval_batches = list(create_eval_batches(source, config, global_batch=4))
  assert batch['images'].shape == batch['second_view'].shape == (4, 16, 16, 3)
  assert [b['mask'].sum() for b in eval_batches] == [4, 2]


def test_real_array_record_data_set_built_offline(tmp_path):
  config = data_config('sdd_jax_tiny_images', data_dir=str(tmp_path), num_classes=3,
                       augment='imagenet', image_size=8, eval_resize=8)
  train = create_source(config, 'train')  # download=True: prepares from the generator above
  assert len(train) == 12 and train.num_classes == 3
  np.testing.assert_array_equal(train.labels(), [train[i]['label'] for i in range(12)])
  shuffled = {train[i]['image'].tobytes(): train[i]['label'] for i in range(12)}
  assert shuffled == {tiny_image(12, i).tobytes(): i % 3 for i in range(12)}
  config.download = False  # prepared now: no download needed
  assert len(create_source(config, 'train[:50%]')) == 6
  assert len(create_source(config, 'test')) == 5


def test_not_prepared_without_download_says_tfds_build(tmp_path):
  config = data_config('cifar100', data_dir=str(tmp_path), download=False)
  with pytest.raises(DataError, match=(r"'cifar100' is not prepared in .*: run `tfds build "
                                       r"cifar100 --file_format=array_record.* or switch "
                                       r"config.data.source to 'npz'/'folder'")):
    create_source(config, 'train')


def test_manual_data_set_hint_names_the_manual_dir(tmp_path):
  config = data_config('imagenet2012', data_dir=str(tmp_path), download=False,
                       manual_dir=str(tmp_path / 'archives'), num_classes=1000)
  with pytest.raises(DataError, match=r'ILSVRC2012_img_train.tar.* in .*archives and run `tfds'):
    create_source(config, 'train')


def test_wrong_num_classes_and_missing_feature():
  with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(DataError, match='has 100 classes but config.data.num_classes is 10'):
      create_source(data_config('cifar100', num_classes=10), 'train')
    with pytest.raises(DataError, match=r"no feature 'fine_label'.*'coarse_label', 'id'"):
      create_source(data_config('cifar100', label_key='fine_label'), 'train')
