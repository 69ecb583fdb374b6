"""CIFAR-C readers (docs/evaluation.md §4, §6): CIFAR-100-C downloaded by hand, CIFAR-10-C via tfds.

**CIFAR-100-C** (not in TFDS): `CIFAR-100-C.tar` from Zenodo record 3555552 unpacks to a folder
with 19 `<corruption>.npy` files, uint8 `[50000, 32, 32, 3]`, and `labels.npy` `[50000]`.
Severity s ∈ 1..5 is rows [(s−1)·n, s·n) with n = 10000, each block in the original CIFAR-100
test order; `labels.npy` is the test labels tiled 5 times. This reader is a plain
`np.load(mmap_mode='r')` (the spec's accepted alternative to a TFDS builder): a severity block
reads only the rows a batch asks for. It accepts any n (rows % 5 == 0), so tests use small
fixtures of the same layout. Asserted (DataError otherwise): every file has `5n` rows of uint8
HWC images, the 5 label blocks are equal, and (`check_clean_labels`) the first block equals the
clean test labels in canonical order (TFDS `id`).

**CIFAR-10-C**: tfds `cifar10_corrupted/<corruption>_<severity>` (95 configs, `test` split);
two names differ from the file names: `glass_blur` is `frosted_glass_blur`, `elastic_transform`
is `elastic`.
"""
import os
from typing import List, Sequence

import numpy as np
import tensorflow_datasets as tfds

from sdd_jax.data.ood import MissingDataError
from sdd_jax.data.sources import ArraySource, DataError
from sdd_jax.data.tfds_source import TfdsSource

NUM_SEVERITIES = 5
CIFAR100_C_DOWNLOAD = 'CIFAR-100-C.tar from https://zenodo.org/record/3555552'
TFDS_NAMES = {'glass_blur': 'frosted_glass_blur', 'elastic_transform': 'elastic'}


class CorruptedFolder:
  """A CIFAR-100-C-layout folder: `<path>/<corruption>.npy` and `<path>/labels.npy`."""

  def __init__(self, path: str, corruptions: Sequence[str], num_classes: int):
    how = (f'download {CIFAR100_C_DOWNLOAD}, unpack it and set config.evals.corruption.path to '
           'the folder holding <corruption>.npy and labels.npy')
    if not path or not os.path.isdir(path):
      raise MissingDataError(f'CIFAR-100-C folder {path!r} not found; {how}')
    missing = [name for name in [*corruptions, 'labels']
               if not os.path.isfile(os.path.join(path, name + '.npy'))]
    if missing:
      files = ', '.join(m + '.npy' for m in missing)
      raise MissingDataError(f'CIFAR-100-C folder {path} lacks {files}; {how} (or list fewer '
                             'in config.evals.corruption.corruptions)')
    labels = np.load(os.path.join(path, 'labels.npy'))
    if labels.ndim != 1 or not len(labels) or len(labels) % NUM_SEVERITIES:
      raise DataError(f'{path}/labels.npy has shape {labels.shape}; expected [5 * n] (n = 10000 '
                      'test images per severity)')
    self.block = len(labels) // NUM_SEVERITIES
    blocks = labels.reshape(NUM_SEVERITIES, self.block)
    if not np.all(blocks == blocks[:1]):
      raise DataError(f'{path}/labels.npy is not one label block tiled 5 times (severity blocks '
                      'differ); is this the CIFAR-100-C labels file?')
    self.path, self.corruptions, self.num_classes = path, tuple(corruptions), num_classes
    self.labels = blocks[0].astype(np.int64)

  def check_clean_labels(self, clean_labels: np.ndarray) -> None:
    """The first severity block's labels must equal the clean test labels in canonical order."""
    clean_labels = np.asarray(clean_labels)
    n = min(self.block, len(clean_labels))
    if len(clean_labels) < self.block or not np.array_equal(self.labels[:n], clean_labels[:n]):
      mismatch = (np.count_nonzero(self.labels[:n] != clean_labels[:n]) + abs(self.block - n))
      raise DataError(f'{self.path}/labels.npy does not match the eval split\'s labels in '
                      f'canonical order ({mismatch} of {self.block} differ, eval split has '
                      f'{len(clean_labels)}): use the CIFAR-100-C of this model\'s data set, or '
                      'set config.evals.corruption.check_labels=False')

  def images(self, corruption: str) -> np.ndarray:
    """uint8 [5n, H, W, C], memory-mapped."""
    path = os.path.join(self.path, corruption + '.npy')
    images = np.load(path, mmap_mode='r')
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != NUM_SEVERITIES * self.block:
      raise DataError(f'{path} is {images.dtype} {images.shape}; expected uint8 '
                      f'[{NUM_SEVERITIES * self.block}, H, W, C] like labels.npy')
    return images

  def severity_source(self, corruption: str, severity: int) -> ArraySource:
    """The n images of `corruption` at `severity` (1..5), rows [(s−1)n, sn), in test order."""
    if not 1 <= severity <= NUM_SEVERITIES:
      raise ValueError(f'severity must be in 1..{NUM_SEVERITIES}, got {severity}')
    start = (severity - 1) * self.block
    images = self.images(corruption)[start:start + self.block]
    return ArraySource(images, self.labels, self.num_classes,
                       f'CIFAR-100-C {corruption} severity {severity}')


def tfds_config(corruption: str, severity: int) -> str:
  """'glass_blur', 3 -> 'cifar10_corrupted/frosted_glass_blur_3'."""
  return f'cifar10_corrupted/{TFDS_NAMES.get(corruption, corruption)}_{severity}'


def missing_tfds_configs(corruptions: Sequence[str], data_dir: str = '') -> List[str]:
  """The `cifar10_corrupted` configs of `corruptions` × 1..5 that are not prepared."""
  return [tfds_config(c, s) for c in corruptions for s in range(1, NUM_SEVERITIES + 1)
          if not tfds.builder(tfds_config(c, s), data_dir=data_dir or None).is_prepared()]


def tfds_severity_source(corruption: str, severity: int, data_dir: str = '') -> TfdsSource:
  """CIFAR-10-C `corruption` at `severity`, tfds split `test` (10,000 images)."""
  builder = tfds.builder(tfds_config(corruption, severity), data_dir=data_dir or None)
  return TfdsSource(builder, 'test', 'image', 'label')


def tfds_missing_message(missing: Sequence[str], data_dir: str) -> str:
  shown = ', '.join(missing[:3]) + (f' and {len(missing) - 3} more' if len(missing) > 3 else '')
  return (f'CIFAR-10-C: tfds {shown} not prepared in {data_dir or "the default data_dir"}; on a '
          f'machine with internet run `tfds build {missing[0]} --file_format=array_record '
          '--data_dir=DIR` (and the same for each missing config) and copy '
          'DIR/cifar10_corrupted here, or set config.evals.corruption.data_dir')
