"""check_splits: the training and evaluation splits checked against the config and each other,
before the workdir is claimed (so a bad test split never costs an epoch and a checkpoint).

Cheap for big sources: a few images of each split (first, middle, last) and the metadata, not
every image; the in-memory sources check all their labels when built (`sources.check_labels`),
folder sources open the image headers of small splits (`FolderSource.check_files`).
"""
from typing import Sequence

import numpy as np

from sdd_jax.data.augment import check_image_shape
from sdd_jax.data.sources import DataError, Source


def sample_indices(size: int) -> Sequence[int]:
  """First, middle and last example: the images a split is checked on."""
  return sorted({0, size // 2, size - 1})


def check_images(data_config, source: Source, split: str) -> int:
  """Sampled images of `source` are uint8 [H, W, C] fitting `data_config`; -> C."""
  if len(source) == 0:
    raise DataError(f'the {split} split {_where(data_config, split)} has no examples; point '
                    f'config.data.{split}_split at a split with data')
  channels = None
  for index in sample_indices(len(source)):
    image = np.asarray(source[index]['image'])
    if image.dtype != np.uint8 or image.ndim != 3:
      raise DataError(f'the {split} split {_where(data_config, split)}: image {index} is '
                      f'{image.dtype} {list(image.shape)}; images must be uint8 [H, W, C] '
                      '(or [H, W])')
    try:
      check_image_shape(data_config, image.shape)
    except DataError as e:
      raise DataError(f'the {split} split {_where(data_config, split)}: {e}') from None
    channels = image.shape[-1]
  return channels


def check_splits(data_config, train: Source, evaluation: Source) -> None:
  """DataError (one line) unless both splits are non-empty, their images fit the config and
  each other (dtype, rank, channels, size where augmentation does not resize), their class
  counts match the config and, for folder sources, their class folders carry the same names."""
  channels = {split: check_images(data_config, source, split)
              for split, source in (('train', train), ('eval', evaluation))}
  if channels['train'] != channels['eval']:
    raise DataError(f'train images have {channels["train"]} channels but eval images '
                    f'{channels["eval"]}; give both splits the same channels')
  train_classes = getattr(train, 'classes', None)
  eval_classes = getattr(evaluation, 'classes', None)
  if train_classes is not None and eval_classes is not None and train_classes != eval_classes:
    missing = sorted(set(train_classes) - set(eval_classes))
    extra = sorted(set(eval_classes) - set(train_classes))
    raise DataError(f'folder source: class folder {missing[0]!r} of {data_config.train_split} '
                    f'is not in {data_config.eval_split}, which has {extra[0]!r} instead; the '
                    'splits must have the same class folder names (labels are their sorted '
                    'order)')
  for source in (train, evaluation):
    if hasattr(source, 'check_files'):
      source.check_files()


def _where(data_config, split: str) -> str:
  name = data_config.train_split if split == 'train' else data_config.eval_split
  if data_config.source == 'tfds':
    return f'{name!r} of tfds {data_config.name}'
  if data_config.source in ('npz', 'folder'):
    return f'{name!r} of {data_config.source} {data_config.path}'
  return f'{name!r} of the {data_config.source} source'
