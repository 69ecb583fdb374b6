"""The pure index sampler: permutations, batch positions and class partners."""
import numpy as np

from sdd_jax.data import sampler


def test_epoch_permutation_is_a_pure_function_of_seed_and_epoch():
  a = sampler.epoch_permutation(3, 0, 100)
  np.testing.assert_array_equal(a, sampler.epoch_permutation(3, 0, 100))
  np.testing.assert_array_equal(np.sort(a), np.arange(100))
  assert not np.array_equal(a, sampler.epoch_permutation(3, 1, 100))
  assert not np.array_equal(a, sampler.epoch_permutation(4, 0, 100))


def test_batch_positions_by_hand():
  # 3 steps per epoch, global batch 8, 2 processes: step 4 = epoch 1, batch 1 -> positions 8..15.
  assert sampler.batch_positions(4, 3, 8, 0, 2)[0] == 1
  np.testing.assert_array_equal(sampler.batch_positions(4, 3, 8, 0, 2)[1], [8, 9, 10, 11])
  np.testing.assert_array_equal(sampler.batch_positions(4, 3, 8, 1, 2)[1], [12, 13, 14, 15])
  np.testing.assert_array_equal(sampler.batch_positions(2, 3, 8)[1], np.arange(16, 24))


def test_class_index_and_partners():
  labels = np.array([2, 0, 2, 1, 0, 2, 2])
  index = sampler.create_class_index(labels, 4)
  np.testing.assert_array_equal(index['order'], [1, 4, 3, 0, 2, 5, 6])
  np.testing.assert_array_equal(index['starts'], [0, 2, 3, 7])
  np.testing.assert_array_equal(index['counts'], [2, 1, 4, 0])
  anchors = np.repeat(np.arange(7), 200)
  keys = np.stack([np.zeros_like(anchors), np.arange(len(anchors))], axis=1)
  partners = sampler.sample_partners(index, labels[anchors], keys)
  np.testing.assert_array_equal(labels[partners], labels[anchors])
  # Uniform over the class, the anchor itself included: class 2 has 4 members.
  counts = np.bincount(partners[labels[anchors] == 2], minlength=7)[[0, 2, 5, 6]]
  assert counts.min() > 800 * 0.2 and counts.max() < 800 * 0.3
  np.testing.assert_array_equal(partners, sampler.sample_partners(index, labels[anchors], keys))
