"""The canonical (original-file) order of a split, and views of a source in another order.

TFDS shuffles examples when it prepares a data set, so index order is not the original order.
Anything index-based (ODIN's held-out first 1000, pairing CIFAR-100-C rows with the test
labels) sorts by a stable key first (docs/evaluation.md §0.6): `id` for cifar100 and svhn_cropped
(`test_00000` ...), `file_name` for dtd. Folder and array sources are already in their
canonical order (sorted relative path = the torchvision ImageFolder order; file order).
"""
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds

from sdd_jax.data.sources import Source

# Features that carry the original order, tried in this order.
ORDER_KEYS = ('id', 'file_name')


def tfds_sort_keys(builder, split: str, key: str) -> np.ndarray:
  """The `key` feature of every example of `split`, in index order (images left undecoded)."""
  skip = {name: tfds.decode.SkipDecoding() for name, feature in builder.info.features.items()
          if isinstance(feature, tfds.features.Image)}
  try:
    examples = builder.as_data_source(split=split, decoders=skip)
    values = [examples[i][key] for i in range(len(examples))]
  except ImportError:  # tfds.testing.mock_data encodes skipped images with TensorFlow
    examples = builder.as_data_source(split=split)
    values = [examples[i][key] for i in range(len(examples))]
  return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])


def tfds_order(builder, split: str, key: Optional[str] = None) -> Optional[np.ndarray]:
  """Indices of `split` sorted by `key` (default: the first of ORDER_KEYS the data set has);
  None when it has none of them."""
  features = builder.info.features
  key = key or next((k for k in ORDER_KEYS if k in features), None)
  if key is None:
    return None
  return np.argsort(tfds_sort_keys(builder, split, key), kind='stable')


def canonical_order(data_config, split: str, source: Source) -> np.ndarray:
  """Indices into `source` (opened from `data_config`, `split`) in the canonical order."""
  if data_config.source == 'tfds':
    builder = tfds.builder(data_config.name, data_dir=data_config.data_dir or None)
    order = tfds_order(builder, split)
    if order is not None:
      if len(order) != len(source):
        raise ValueError(f'canonical order of {data_config.name}:{split} has {len(order)} '
                         f'entries but the source {len(source)}')
      return order
  return np.arange(len(source))


class IndexedSource(Source):
  """`source` seen through `indices` (position i is `source[indices[i]]`), each image passed
  through `transform(uint8 [H, W, C]) -> uint8 [h, w, c]` when given."""

  def __init__(self, source: Source, indices: Sequence[int],
               transform: Optional[Callable[[np.ndarray], np.ndarray]] = None):
    self.source, self.indices = source, np.asarray(indices, np.int64)
    self.transform = transform
    self.num_classes = source.num_classes

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index):
    example = self.source[int(self.indices[index])]
    if self.transform is not None:
      example = {**example, 'image': self.transform(example['image'])}
    return example

  def labels(self) -> np.ndarray:
    return np.asarray(self.source.labels())[self.indices]

  def get_batch(self, indices):
    batch = self.source.get_batch(self.indices[np.asarray(indices, np.int64)])
    if self.transform is not None:
      batch = {**batch, 'images': [self.transform(image) for image in batch['images']]}
    return batch
