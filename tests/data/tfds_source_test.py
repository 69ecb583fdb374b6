"""The tfds source: tfds.testing.mock_data on the real builders, a real array_record data set built
here offline, and the missing-data messages. No test may reach a download."""
import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs.common import data_config
from sdd_jax.data import DataError, TrainLoader, create_eval_batches, create_source
from sdd_jax.data import tfds_source


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
  # (partners of the anchor's class: tests/data/loader_test.py, on a source whose images name
  # their index)


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


class _Processes:
  """Stands in for `jax` in tfds_source: this process's index among `count`, and a barrier that
  records the order of events (and can run what process 0 does meanwhile)."""

  def __init__(self, index, count, while_waiting=None):
    self.index, self.count, self.while_waiting, self.events = index, count, while_waiting, []

  def process_index(self):
    return self.index

  def process_count(self):
    return self.count

  def barrier(self, name):
    self.events.append(('barrier', name))
    if self.while_waiting:
      self.while_waiting()


def _multi_process(monkeypatch, tmp_path, index, while_waiting=None):
  """Process `index` of 2; download_and_prepare is recorded (and really run)."""
  processes = _Processes(index, 2, while_waiting)
  monkeypatch.setattr(tfds_source, 'jax', processes)
  monkeypatch.setattr(tfds_source, '_barrier', processes.barrier)
  prepare = SddJaxTinyImages.download_and_prepare

  def recorded(self, *args, **kwargs):
    processes.events.append(('prepare', str(self.data_dir_root)))
    return prepare(self, *args, **kwargs)

  monkeypatch.setattr(SddJaxTinyImages, 'download_and_prepare', recorded)
  return processes, data_config('sdd_jax_tiny_images', data_dir=str(tmp_path), num_classes=3,
                                augment='imagenet', image_size=8, eval_resize=8)


def test_process_zero_prepares_then_the_barrier(monkeypatch, tmp_path):
  processes, config = _multi_process(monkeypatch, tmp_path, 0)
  assert len(create_source(config, 'train')) == 12
  assert processes.events == [('prepare', str(tmp_path)),
                              ('barrier', 'sdd_jax tfds sdd_jax_tiny_images prepared')]
  assert len(create_source(config, 'test')) == 5  # prepared: no second prepare, one barrier
  assert [e[0] for e in processes.events] == ['prepare', 'barrier', 'barrier']


def test_other_processes_never_prepare_they_wait_for_process_zero(monkeypatch, tmp_path):
  def process_zero_prepares():  # what process 0 does while process 1 waits at the barrier
    tfds.builder('sdd_jax_tiny_images', data_dir=str(tmp_path)).download_and_prepare(
        file_format='array_record')

  processes, config = _multi_process(monkeypatch, tmp_path, 1, process_zero_prepares)
  source = create_source(config, 'train')
  assert len(source) == 12 and source.num_classes == 3
  # One prepare, by "process 0" during the barrier; none by process 1 itself.
  assert [e[0] for e in processes.events] == ['barrier', 'prepare']


def test_other_process_that_does_not_see_the_data_fails_with_one_line(monkeypatch, tmp_path):
  processes, config = _multi_process(monkeypatch, tmp_path, 1)  # process 0 wrote elsewhere
  with pytest.raises(DataError, match=(
      r"^process 1 of 2: tfds data set 'sdd_jax_tiny_images' is not prepared in .*, which "
      r'process 0 prepares: set config.data.data_dir to a folder every host reads')) as error:
    create_source(config, 'train')
  assert '\n' not in str(error.value)
  assert [e[0] for e in processes.events] == ['barrier']  # waited, never prepared


def test_process_zero_that_cannot_prepare_still_releases_the_others(monkeypatch, tmp_path):
  processes, config = _multi_process(monkeypatch, tmp_path, 0)
  config.download = False
  with pytest.raises(DataError, match="'sdd_jax_tiny_images' is not prepared in"):
    create_source(config, 'train')
  assert [e[0] for e in processes.events] == ['barrier']


def test_the_real_barrier_runs():  # one process here; the same collective on a pod
  tfds_source._barrier('sdd_jax tfds test barrier')
