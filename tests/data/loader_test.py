"""TrainLoader: determinism, exact resume, epochs, multi-host slices, pairs and views."""
import itertools
import os

import numpy as np
import pytest

from configs.common import data_config
from sdd_jax.data import DataError, TrainLoader, create_source, loader_options, resolve_workers
from sdd_jax.data.sources import ArraySource
from sdd_jax.data.augment import draw_crop_and_flip

CONFIG = data_config('synthetic', source='synthetic', num_examples=100, num_classes=7,
                     synthetic_shape=(32, 32, 3), num_workers=0)  # one test starts processes
SOURCE = create_source(CONFIG, 'train')


def _loader(**kwargs):
  kwargs = dict(dict(global_batch=16, seed=5), **kwargs)
  return TrainLoader(SOURCE, CONFIG, **kwargs)


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_shapes_and_dtypes():
  loader = _loader(views=2, pairs=True)
  assert loader.steps_per_epoch == 6  # 100 // 16, the remainder dropped
  batch = loader.batch(0)
  for key in ('images', 'second_view', 'pair_images'):
    assert batch[key].shape == (16, 32, 32, 3) and batch[key].dtype == np.uint8
  for key in ('labels', 'index'):
    assert batch[key].shape == (16,) and batch[key].dtype == np.int32
  np.testing.assert_array_equal(batch['labels'], SOURCE.labels()[batch['index']])
  assert loader.image_shape == (32, 32, 3)


def test_image_shape_is_what_random_resized_crops_give():
  config = data_config('synthetic', source='synthetic', num_examples=20, num_classes=3,
                       synthetic_shape=(40, 48, 1), augment='imagenet', image_size=24,
                       eval_resize=28, mean=(0.5,), std=(0.25,))
  loader = TrainLoader(create_source(config, 'train'), config, global_batch=4, seed=0)
  assert loader.image_shape == (24, 24, 1) == loader.batch(0)['images'].shape[1:]


def test_images_are_the_augmented_source_images():
  loader = _loader()
  batch = loader.batch(7)  # epoch 1
  top, left, flip = draw_crop_and_flip(
      np.stack([np.full(16, 5), np.full(16, 1), batch['index'], np.zeros(16, int)], axis=1),
      32, 32, 32, 4, True)
  for row, i in enumerate(batch['index']):
    padded = np.pad(SOURCE[int(i)]['image'], ((4, 4), (4, 4), (0, 0)))
    window = padded[top[row]:top[row] + 32, left[row]:left[row] + 32]
    window = window[:, ::-1] if flip[row] else window
    np.testing.assert_array_equal(batch['images'][row], window)  # uint8, not yet normalised


def test_batch_is_a_pure_function_of_seed_and_step():
  a, b = _loader(views=2, pairs=True), _loader(views=2, pairs=True)
  for step in (9, 0, 3, 9):
    _assert_batches_equal(a.batch(step), b.batch(step))
  assert not np.array_equal(a.batch(0)['index'], _loader(seed=6).batch(0)['index'])


def test_each_epoch_visits_every_index_once_in_a_new_order():
  loader = _loader()
  orders = []
  for epoch in range(3):
    steps = range(epoch * 6, (epoch + 1) * 6)
    order = np.concatenate([loader.batch(step)['index'] for step in steps])
    assert len(np.unique(order)) == 96  # 100 - the dropped remainder of 4
    np.testing.assert_array_equal(order, loader.permutation(epoch)[:96])
    orders.append(order)
  assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
  # The same example is augmented afresh in each epoch.
  first = {int(i): row for row, i in enumerate(loader.batch(0)['index'])}
  again = loader.batch(6)
  shared = [(first[int(i)], row) for row, i in enumerate(again['index']) if int(i) in first]
  assert shared and any(not np.array_equal(loader.batch(0)['images'][r0], again['images'][r1])
                        for r0, r1 in shared)


def test_iterate_yields_exactly_batch_k_onwards():
  loader = _loader(views=2, pairs=True)
  for start in (0, 4):
    batches = list(itertools.islice(loader.iterate(start), 8))  # crosses an epoch boundary
    for offset, batch in enumerate(batches):
      _assert_batches_equal(batch, loader.batch(start + offset))


def test_worker_processes_give_bitwise_the_batches_of_no_workers():
  """2 spawned worker processes, and the caller's thread alone (prefetch 0, no workers): the
  very bytes `batch(step)` computes here, in step order (worker i builds steps 3 + i, 5 + i...)."""
  expected = [_loader(views=2, pairs=True).batch(step) for step in range(3, 10)]
  for prefetch, workers in ((0, 0), (2, 2)):
    config = CONFIG.copy_and_resolve_references()
    config.prefetch, config.num_workers = prefetch, workers
    batches = TrainLoader(SOURCE, config, global_batch=16, seed=5, views=2,
                          pairs=True).iterate(3)
    for want in expected:
      got = next(batches)
      assert got['images'].dtype == np.uint8
      _assert_batches_equal(got, want)
      del got  # worker batches live in shared memory, released with the array
    batches.close()


def test_num_workers_minus_one_is_one_worker_per_core():
  assert resolve_workers(-1) == len(os.sched_getaffinity(0)) >= 1
  assert (resolve_workers(0), resolve_workers(3)) == (0, 3)


@pytest.mark.parametrize('process_count', [2, 4])
def test_process_slices_are_disjoint_and_concatenate_to_the_global_batch(process_count):
  whole = _loader(views=2, pairs=True)
  parts = [_loader(views=2, pairs=True, process_index=p, process_count=process_count)
           for p in range(process_count)]
  for step in (0, 8):
    slices = [part.batch(step) for part in parts]
    assert len(set(np.concatenate([s['index'] for s in slices]).tolist())) == 16
    for key, value in whole.batch(step).items():
      np.testing.assert_array_equal(np.concatenate([s[key] for s in slices]), value, err_msg=key)


# Example i's image is the constant i: a crop (padding 4 of 32) and a flip keep the centre
# pixel inside the image, so a pair image's centre names the partner it was drawn from.
NUMBERED = ArraySource(np.broadcast_to(np.arange(100, dtype=np.uint8)[:, None, None, None],
                                       (100, 32, 32, 3)).copy(), SOURCE.labels(), 7, 'numbered')


def _partners(step, loader=None):
  batch = (loader or TrainLoader(NUMBERED, CONFIG, global_batch=16, seed=5,
                                 pairs=True)).batch(step)
  return batch, batch['pair_images'][:, 16, 16, 0].astype(np.int64)


def test_pairs_share_the_anchor_class_and_follow_the_epoch():
  loader = TrainLoader(NUMBERED, CONFIG, global_batch=16, seed=5, pairs=True)
  labels = SOURCE.labels()
  epoch0 = [_partners(step, loader) for step in range(6)]
  for batch, partners in epoch0:
    np.testing.assert_array_equal(batch['images'][:, 16, 16, 0], batch['index'])  # the decoding
    np.testing.assert_array_equal(labels[partners], batch['labels'])
    np.testing.assert_array_equal(batch['pair_images'].shape, batch['images'].shape)
  partners0 = np.concatenate([p for _, p in epoch0])
  np.testing.assert_array_equal(partners0, np.concatenate([_partners(s)[1] for s in range(6)]))
  partners1 = np.concatenate([_partners(s, loader)[1] for s in range(6, 12)])
  assert not np.array_equal(partners0, partners1)
  assert not np.array_equal(partners0, np.concatenate([b['index'] for b, _ in epoch0]))


def test_second_view_is_another_augmentation_of_the_same_examples():
  batch = _loader(views=2).batch(3)
  plain = _loader().batch(3)
  _assert_batches_equal({k: batch[k] for k in plain}, plain)
  differs = [not np.array_equal(a, b) for a, b in zip(batch['images'], batch['second_view'])]
  assert sum(differs) >= 12  # a few may draw the same crop and flip
  # 0.1 in normalised units is about 5 of 255 levels
  assert np.isclose(batch['second_view'].mean(), batch['images'].mean(), atol=5)


@pytest.mark.parametrize('kwargs, match', [
    (dict(global_batch=18, process_count=4), 'global batch 18 must be a positive multiple of the '
                                             'process count 4'),
    (dict(global_batch=128), 'has 100 examples, fewer than one global batch of 128'),
    (dict(views=3), 'views must be 1 or 2'),
    (dict(seed=-1), 'seed must be >= 0'),
])
def test_bad_arguments_say_what_to_change(kwargs, match):
  with pytest.raises(DataError, match=match):
    _loader(**kwargs)


def test_loader_options_follow_the_methods_needs():
  assert loader_options(()) == {}
  assert loader_options(('index',)) == {}
  assert loader_options(('pair_images', 'second_view')) == {'pairs': True, 'views': 2}
  with pytest.raises(DataError, match=r"batch key 'third_view' is not provided by the input "
                                      r'pipeline \(it provides images, labels, index, '):
    loader_options(('third_view',))
