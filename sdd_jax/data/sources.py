"""Random-access sources: `len`, `source[i] -> {'image', 'label'}`, `labels()`, `get_batch`.

A source is chosen by `config.data.source` from `SOURCES`; every entry is a function
`(data_config, split) -> Source`. This module holds the in-memory sources (`npz`,
`synthetic`, `digits`) and `check_labels`, the labels' contract; `folder_source.py` adds
`folder`, `tfds_source.py` adds `tfds`. Missing or inconsistent data
raises `DataError` with one line saying what to change.
"""
import os
import zlib
from typing import Dict, List, Sequence, Union

import numpy as np

from sdd_jax.registry import Registry
from sdd_jax.errors import DataError

SOURCES = Registry('data source')

IMAGE_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.png', '.ppm', '.tif', '.tiff', '.webp')

# A batch of images: one uint8 array [n, H, W, C] when all have one size, else a list of
# uint8 arrays [H_i, W_i, C].
Images = Union[np.ndarray, List[np.ndarray]]


class Source:
  """A split of a data set with random access by integer index.

  Subclasses set `num_classes` and implement `__len__`, `__getitem__` and `labels`;
  `get_batch` reads one example at a time unless a subclass has a faster way.
  """

  num_classes: int

  def __len__(self) -> int:
    raise NotImplementedError

  def __getitem__(self, index: int) -> Dict[str, Union[np.ndarray, int]]:
    """-> {'image': uint8 [H, W, C], 'label': int}."""
    raise NotImplementedError

  def labels(self) -> np.ndarray:
    """int64 [N]: the label of every example, in index order."""
    raise NotImplementedError

  def get_batch(self, indices: Sequence[int]) -> Dict[str, Union[Images, np.ndarray]]:
    """-> {'images': uint8 [n, H, W, C] or a list of n uint8 [H_i, W_i, C], 'labels': int32 [n]}."""
    examples = [self[int(i)] for i in indices]
    return {'images': [example['image'] for example in examples],
            'labels': np.array([example['label'] for example in examples], np.int32)}


def check_labels(labels, num_classes: int, name: str) -> np.ndarray:
  """Class indices int64 [N] from `labels`, or DataError (one line, naming `name`): strings,
  one-hot rows, fractional floats or values outside [0, num_classes) are refused; floats that
  are whole numbers are accepted."""
  labels = np.asarray(labels)
  if labels.dtype.kind in 'USO':
    example = f' (e.g. {labels.flat[0].item()!r})' if labels.size else ''
    raise DataError(f'{name}: labels are {labels.dtype}{example} but must be '
                    f'class indices int [N]; map the names to 0..{num_classes - 1} first')
  if labels.ndim != 1:
    hint = ('; they look one-hot: store labels.argmax(1)' if labels.ndim == 2 else '')
    raise DataError(f'{name}: labels must be class indices int [N], got shape '
                    f'{list(labels.shape)}{hint}')
  if labels.dtype.kind == 'f':
    bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
    if len(bad):
      raise DataError(f'{name}: label {bad[0]} is {labels[bad[0]]}, not a whole number; labels '
                      'must be class indices (int [N]), not probabilities or scores')
  elif labels.dtype.kind not in 'iu':
    raise DataError(f'{name}: labels are {labels.dtype} but must be class indices int [N]')
  labels = labels.astype(np.int64)
  if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
    raise DataError(f'{name}: labels span {labels.min()}..{labels.max()} but '
                    f'config.data.num_classes is {num_classes}; set num_classes to the '
                    f'number of classes of the data')
  return labels


class ArraySource(Source):
  """All images in memory as one uint8 array [N, H, W, C]; labels int [N]."""

  def __init__(self, images: np.ndarray, labels: np.ndarray, num_classes: int, name: str):
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
      raise DataError(f'{name}: images must be uint8 [N, H, W, C] (or [N, H, W]); got '
                      f'{images.dtype} {list(images.shape)}'
                      + ('; convert with np.round(x * 255).astype(np.uint8) if they are in '
                         '[0, 1]' if images.dtype.kind == 'f' else ''))
    labels = check_labels(labels, num_classes, name)
    if len(images) != len(labels):
      raise DataError(f'{name}: {len(images)} images but {len(labels)} labels; give one label '
                      'per image')
    self.images, self._labels, self.num_classes = images, labels, num_classes

  def __len__(self) -> int:
    return len(self._labels)

  def __getitem__(self, index):
    return {'image': self.images[index], 'label': int(self._labels[index])}

  def labels(self) -> np.ndarray:
    return self._labels

  def get_batch(self, indices):
    indices = np.asarray(indices, np.int64)
    return {'images': self.images[indices], 'labels': self._labels[indices].astype(np.int32)}


def split_file(data_config, split: str, suffix: str = '') -> str:
  if not data_config.path:
    raise DataError(f'config.data.source={data_config.source!r} needs config.data.path: the '
                    f'folder holding {split}{suffix or "/<class>/<image>"}')
  return os.path.join(data_config.path, split + suffix)


_SAVE = 'np.savez(path, x=np.stack(images).astype(np.uint8), y=np.asarray(labels))'


def _npz_member(arrays, member: str, path: str) -> np.ndarray:
  """arrays[member]; DataError for an object (pickled) array, which is not read, and for a
  member that is not a .npy array at all (a zip of other files, which numpy gives as bytes)."""
  try:
    value = arrays[member]
  except ValueError as e:
    if 'allow_pickle' not in str(e):
      raise
    raise DataError(f'npz source: {path}: member {member} is an object array (pickled Python '
                    f'objects), which is not read; save a numeric array, e.g. {_SAVE}') from None
  if not isinstance(value, np.ndarray):
    raise DataError(f'npz source: {path}: member {member} is not a .npy array (the file is a zip '
                    f'of other files, not written by np.savez); write it with {_SAVE}')
  return value


@SOURCES.register('npz')
def create_npz_source(data_config, split: str) -> ArraySource:
  """`<path>/<split>.npz` with `x` uint8 [N, H, W, C] (or [N, H, W]) and `y` int [N]; an optional
  `label_names` [classes] fixes the class count."""
  path = split_file(data_config, split, '.npz')
  if not os.path.isfile(path):
    raise DataError(f'npz source: {path} does not exist; expected <config.data.path>/<split>.npz '
                    f'holding x (uint8 [N, H, W, C]) and y (int [N])')
  try:
    with np.load(path, allow_pickle=False) as arrays:
      if 'x' not in arrays or 'y' not in arrays:
        raise DataError(f'npz source: {path} holds {sorted(arrays.files)}; it needs x (uint8 '
                        f'[N, H, W, C]) and y (int [N])')
      members = [m for m in ('x', 'y', 'label_names') if m in arrays]
      images, labels, *names = [_npz_member(arrays, m, path) for m in members]
      names = names[0] if names else None
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # a truncated or foreign file
    raise DataError(f'npz source: {path} cannot be read ({type(e).__name__}); write it again '
                    'with np.savez(path, x=..., y=...)') from None
  if names is not None and len(names) != data_config.num_classes:
    raise DataError(f'npz source: {path} names {len(names)} classes but config.data.num_classes '
                    f'is {data_config.num_classes}; set num_classes={len(names)}')
  if images.ndim == 3:
    images = images[..., None]
  return ArraySource(images, labels, data_config.num_classes, f'npz source {path}')


@SOURCES.register('synthetic')
def create_synthetic_source(data_config, split: str) -> ArraySource:
  """`num_examples` images of `synthetic_shape`, each half a fixed per-class pattern (shared by
  all splits, so a model can learn it) and half noise seeded by the split name."""
  shape, num_classes = tuple(data_config.synthetic_shape), data_config.num_classes
  if data_config.num_examples <= 0:
    raise DataError('synthetic source: set config.data.num_examples > 0 (the size of each split)')
  patterns = np.random.default_rng(0).integers(0, 128, (num_classes, *shape), dtype=np.uint8)
  rng = np.random.default_rng([1, zlib.crc32(split.encode())])
  labels = rng.integers(0, num_classes, data_config.num_examples)
  noise = rng.integers(0, 128, (data_config.num_examples, *shape), dtype=np.uint8)
  return ArraySource(patterns[labels] + noise, labels, num_classes, 'synthetic source')


DIGITS_TRAIN_SIZE = 1437  # of 1,797; the other 360 are 'test'


@SOURCES.register('digits')
def create_digits_source(data_config, split: str) -> ArraySource:
  """scikit-learn's 1,797 real 8x8 digits as uint8 [8, 8, 1] (0..16 scaled by 255/16), split by
  a fixed shuffle: 'train' is the first 1,437, 'test' the last 360. 10 classes."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  if split not in ('train', 'test'):
    raise DataError(f"digits source: unknown split {split!r}; use 'train' or 'test'")
  if data_config.num_classes != 10:
    raise DataError(f'digits source has 10 classes but config.data.num_classes is '
                    f'{data_config.num_classes}; set num_classes=10')
  digits = load_digits()
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
  order = np.random.default_rng(0).permutation(len(images))
  order = order[:DIGITS_TRAIN_SIZE] if split == 'train' else order[DIGITS_TRAIN_SIZE:]
  return ArraySource(images[order], digits.target[order], 10, 'digits source')


def create_source(data_config, split: str) -> Source:
  """The split `split` of the source `data_config.source`, checked against `num_classes`."""
  source = SOURCES.get(data_config.source)(data_config, split)
  if source.num_classes != data_config.num_classes:
    raise DataError(f'{data_config.source} source {split!r} has {source.num_classes} classes but '
                    f'config.data.num_classes is {data_config.num_classes}; set '
                    f'num_classes={source.num_classes}')
  return source
