"""Training batches: `TrainLoader.batch(step)` is a pure function of (seed, step).

The indices come from `sampler.py`; augmentation keys are `(seed, epoch, index, view)` for the
views and `(seed, epoch, position, stream)` for class partners, so the same example gets the
same augmentation however the global batch is split across processes. `iterate(start)` yields
exactly `batch(start), batch(start + 1), ...`, built ahead by `config.data.num_workers` worker
processes (grain's `mp_prefetch`: worker i builds the steps start + i, start + i + n, ... and
the batches come back in step order through shared memory). Images are uint8; the train step
normalises them on the device (normalization.py).
"""
import functools
import os
import signal
import sys
import threading
import time
from typing import Callable, Dict, Iterator

from absl import flags
import grain
import numpy as np

from sdd_jax.data.augment import check_image_shape, make_augment_fn
from sdd_jax.data.sampler import (PARTNER_STREAM, batch_positions, create_class_index,
                                  epoch_permutation, sample_partners)
from sdd_jax.data.sources import DataError, Source

Batch = Dict[str, np.ndarray]


def resolve_workers(num_workers: int) -> int:
  """`config.data.num_workers` -> a count: -1 is the number of CPU cores this process may run
  on (its affinity mask, else os.cpu_count()), resolved on the host that runs."""
  if num_workers >= 0:
    return num_workers
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def _init_worker(index: int, count: int) -> None:
  """In each worker process: SIGTERM and SIGINT are the training process's to handle (it
  checkpoints, then stops its workers); a worker whose parent died exits."""
  del index, count
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  parent = os.getppid()

  def watch():
    while os.getppid() == parent:
      time.sleep(1)
    os._exit(0)  # pylint: disable=protected-access

  threading.Thread(target=watch, daemon=True).start()


def prefetch(batch_fn: Callable[[int], Batch], start: int, stop: int, data_config, *,
             processes: bool = False) -> Iterator[Batch]:
  """Yields batch_fn(i) for i in [start, stop) in order.

  processes=True and n = resolve_workers(num_workers) > 0: n worker processes (spawned; they
  unpickle `batch_fn`) build the batches, each keeping up to max(1, prefetch) of its own
  ready; they ignore SIGTERM/SIGINT (the training process checkpoints and stops them) and exit
  if their parent dies. Otherwise max(1, min(n, prefetch)) threads of this process build up to
  `prefetch` batches ahead (prefetch=0: on demand in the caller's thread).
  """
  workers = resolve_workers(data_config.num_workers)
  dataset = grain.MapDataset.range(start, stop).map(batch_fn)
  if processes and workers:
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags; outside absl.app: defaults
      flags.FLAGS.mark_as_parsed()
    options = grain.MultiprocessingOptions(num_workers=workers,
                                           per_worker_buffer_size=max(1, data_config.prefetch))
    return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=0)).mp_prefetch(
        options, worker_init_fn=_init_worker))
  threads = max(1, min(workers, data_config.prefetch))  # more could not all be busy
  options = grain.ReadOptions(num_threads=threads if data_config.prefetch else 0,
                              prefetch_buffer_size=data_config.prefetch)
  return iter(dataset.to_iter_dataset(options))


def check_batch_split(global_batch: int, process_index: int, process_count: int) -> int:
  """-> the host-local batch `global_batch // process_count`; DataError if it does not divide."""
  if global_batch <= 0 or global_batch % process_count:
    raise DataError(f'the global batch {global_batch} must be a positive multiple of the '
                    f'process count {process_count}; change config.batch_size')
  if not 0 <= process_index < process_count:
    raise DataError(f'process index {process_index} is not in [0, {process_count})')
  return global_batch // process_count


def _keys(seed: int, epoch: int, ids: np.ndarray, stream: int) -> np.ndarray:
  """int64 [n, 4]: rows (seed, epoch, ids[i], stream)."""
  n = len(ids)
  return np.stack([np.full(n, seed), np.full(n, epoch), ids, np.full(n, stream)], axis=1)


# Batch keys a method may need -> the TrainLoader options that provide them.
BATCH_KEYS = {'index': {}, 'second_view': {'views': 2}, 'pair_images': {'pairs': True}}


def loader_options(needs) -> Dict[str, object]:
  """Batch keys (the union of the methods' needs) -> TrainLoader keyword arguments
  (`views`, `pairs`). Raises DataError naming a key the pipeline cannot provide."""
  options = {}
  for key in sorted(needs):
    if key not in BATCH_KEYS:
      raise DataError(f'batch key {key!r} is not provided by the input pipeline (it provides '
                      f'images, labels, {", ".join(BATCH_KEYS)})')
    options.update(BATCH_KEYS[key])
  return options


class TrainLoader:
  """Host-local training batches of `source` for process `process_index` of `process_count`.

  `batch(step)` -> {'images': uint8 [b, S, S, C], 'labels': int32 [b], 'index': int32 [b]},
  b = global_batch // process_count, plus 'second_view' uint8 [b, S, S, C] (views=2) and
  'pair_images' uint8 [b, S, S, C] (pairs=True: an example of the same class as each anchor,
  for CS-KD). `image_shape` is [S, S, C], known without building a batch.
  Images are augmented, not normalised (normalization.py does that on the device).
  """

  def __init__(self, source: Source, data_config, *, global_batch: int, seed: int,
               process_index: int = 0, process_count: int = 1, views: int = 1,
               pairs: bool = False):
    self.local_batch = check_batch_split(global_batch, process_index, process_count)
    if seed < 0:
      raise DataError(f'the data seed must be >= 0, got {seed}')
    if views not in (1, 2):
      raise DataError(f'views must be 1 or 2, got {views}')
    self.steps_per_epoch = len(source) // global_batch
    if not self.steps_per_epoch:
      raise DataError(f'the training split has {len(source)} examples, fewer than one global '
                      f'batch of {global_batch}; lower config.batch_size')
    channels = source[0]['image'].shape[-1]
    check_image_shape(data_config, source[0]['image'].shape)
    # What augmentation gives (check_image_shape holds the non-resizing kinds to image_size).
    self.image_shape = (data_config.image_size, data_config.image_size, channels)
    self.source, self.global_batch, self.seed = source, global_batch, seed
    self.process_index, self.process_count = process_index, process_count
    self.views, self.pairs = views, pairs
    self._data_config = data_config
    self._augment_fn = make_augment_fn(data_config, train=True)
    self._class_index = (create_class_index(source.labels(), source.num_classes) if pairs
                         else None)
    self.permutation = functools.lru_cache(maxsize=2)(self._permutation)

  def __getstate__(self):
    """What a worker process unpickles: everything but the permutation cache."""
    return {k: v for k, v in self.__dict__.items() if k != 'permutation'}

  def __setstate__(self, state):
    self.__dict__.update(state)
    self.permutation = functools.lru_cache(maxsize=2)(self._permutation)

  def _permutation(self, epoch: int) -> np.ndarray:
    """int64 [N], read-only: the order of epoch `epoch` (`permutation` caches two epochs)."""
    order = epoch_permutation(self.seed, epoch, len(self.source))
    order.flags.writeable = False
    return order

  def batch(self, step: int) -> Batch:
    epoch, positions = batch_positions(step, self.steps_per_epoch, self.global_batch,
                                       self.process_index, self.process_count)
    indices = self.permutation(epoch)[positions]
    examples = self.source.get_batch(indices)
    batch = {'images': self._augment_fn(examples['images'], _keys(self.seed, epoch, indices, 0)),
             'labels': np.asarray(examples['labels'], np.int32),
             'index': indices.astype(np.int32)}
    if self.views == 2:
      batch['second_view'] = self._augment_fn(examples['images'],
                                              _keys(self.seed, epoch, indices, 1))
    if self.pairs:
      partners = sample_partners(self._class_index, batch['labels'],
                                 _keys(self.seed, epoch, positions, PARTNER_STREAM))
      batch['pair_images'] = self._augment_fn(self.source.get_batch(partners)['images'],
                                              _keys(self.seed, epoch, positions,
                                                    PARTNER_STREAM + 1))
    return batch

  def iterate(self, start_step: int = 0) -> Iterator[Batch]:
    """batch(start_step), batch(start_step + 1), ... without end, built ahead by the worker
    processes (`prefetch`), started at the first next(); dropping or close()-ing the iterator
    stops them."""
    batches = prefetch(self.batch, start_step, sys.maxsize, self._data_config, processes=True)
    try:
      yield from batches
    finally:
      batches.close()
