"""Evaluation batches: every example of a split exactly once, in source order, padded and masked.

Global batch g holds positions [g * B, (g + 1) * B) in its first B rows, then zero rows up to
the padded size B' >= B (a multiple of the device and process counts, `parallel.eval_batch_rows`);
the last one also pads its missing positions. Padded rows have `mask` False. Process p takes rows
[p * b, (p + 1) * b), b = B' / P. Metrics sum over `mask`, so nothing is dropped and nothing
counts twice, whatever B, B', the devices and P are. Images are uint8 (the evaluators see them
normalised on the device: `normalization.normalize_eval_batch`); the batches are built ahead by
`num_workers` threads of this process (not processes: an evaluation may open many short streams,
e.g. one per corruption, and would pay a worker start-up for each).
"""
from typing import Iterator

import numpy as np

from sdd_jax.data.augment import check_image_shape, make_augment_fn
from sdd_jax.data.loader import Batch, check_batch_split, prefetch
from sdd_jax.data.sources import DataError, Source


def num_eval_batches(num_examples: int, global_batch: int) -> int:
  """ceil(num_examples / global_batch)."""
  return -(-num_examples // global_batch)


def create_eval_batches(source: Source, data_config, *, global_batch: int, process_index: int = 0,
                        process_count: int = 1, padded_batch: int = 0) -> Iterator[Batch]:
  """Yields num_eval_batches(len(source), global_batch) host-local dicts: 'images' uint8
  [b, S, S, C] (eval preprocessing, not normalised), 'labels' int32 [b], 'index' int32 [b] (source
  index), 'mask' bool [b]; padded rows are all zero with mask False. Each global batch holds
  `global_batch` examples in `padded_batch` rows (0: `global_batch`), b = padded_batch / P."""
  padded_batch = padded_batch or global_batch
  if padded_batch < global_batch:
    raise ValueError(f'padded_batch {padded_batch} < global_batch {global_batch}')
  local_batch = check_batch_split(padded_batch, process_index, process_count)
  num_examples = len(source)
  if not num_examples:
    raise DataError('the evaluation split is empty; check config.data.eval_split')
  shape = source[0]['image'].shape
  check_image_shape(data_config, shape)
  size = data_config.image_size
  augment_fn = make_augment_fn(data_config, train=False)

  def make_batch(number: int) -> Batch:
    rows = np.arange(process_index * local_batch, (process_index + 1) * local_batch)
    positions = number * global_batch + rows
    real = (rows < global_batch) & (positions < num_examples)
    count = int(np.sum(real))  # real rows come first
    batch = {'images': np.zeros((local_batch, size, size, shape[-1]), np.uint8),
             'labels': np.zeros(local_batch, np.int32),
             'index': np.where(real, positions, 0).astype(np.int32),
             'mask': real}
    if count:
      examples = source.get_batch(positions[:count])
      batch['images'][:count] = augment_fn(examples['images'], None)
      batch['labels'][:count] = examples['labels']
    return batch

  return prefetch(make_batch, 0, num_eval_batches(num_examples, global_batch), data_config)
