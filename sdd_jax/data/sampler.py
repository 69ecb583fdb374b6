"""Which examples a step reads: pure functions of (seed, epoch, position), no iterator state.

An epoch is a permutation of the split, a pure function of (seed, epoch). Step k of the epoch
reads positions [k * B, (k + 1) * B) of it (the last partial batch is dropped), and process p of
P reads rows [p * b, (p + 1) * b) of that global batch, b = B / P. So any step can be rebuilt on
its own (exact resume), and 1 process and P processes see the same global batch.
"""
from typing import Dict, Tuple

import numpy as np

from sdd_jax.data.augment import random_words

PARTNER_STREAM = 1_000_003  # the last key word of partner draws; views use 0, 1, ...


def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
  """int64 [size]: the order in which epoch `epoch` visits the examples."""
  return np.random.default_rng([seed, epoch]).permutation(size)


def batch_positions(step: int, steps_per_epoch: int, global_batch: int, process_index: int = 0,
                    process_count: int = 1) -> Tuple[int, np.ndarray]:
  """-> (epoch, int64 [global_batch // process_count]): the positions in the epoch's permutation
  that process `process_index` reads at `step`."""
  epoch, k = divmod(step, steps_per_epoch)
  local_batch = global_batch // process_count
  start = k * global_batch + process_index * local_batch
  return epoch, np.arange(start, start + local_batch, dtype=np.int64)


def create_class_index(labels: np.ndarray, num_classes: int) -> Dict[str, np.ndarray]:
  """labels int [N] -> {'order': int64 [N] indices sorted by class (stable), 'starts': int64
  [classes] where each class begins in `order`, 'counts': int64 [classes]}."""
  labels = np.asarray(labels, np.int64)
  counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
  return {'order': np.argsort(labels, kind='stable'), 'starts': starts, 'counts': counts}


def sample_partners(class_index: Dict[str, np.ndarray], labels: np.ndarray, keys) -> np.ndarray:
  """labels int [n] of the anchors and keys int [n, k] -> int64 [n]: for each anchor an index
  drawn uniformly from all examples of its class (possibly the anchor), a pure function of its
  key."""
  labels = np.asarray(labels, np.int64)
  counts = class_index['counts'][labels]
  if np.any(counts == 0):
    raise ValueError(f'classes {np.unique(labels[counts == 0])} have no examples to pair with')
  offsets = random_words(keys, 1)[:, 0] % counts.astype(np.uint64)
  return class_index['order'][class_index['starts'][labels] + offsets.astype(np.int64)]
