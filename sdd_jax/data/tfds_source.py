"""The `tfds` source: a TFDS data set prepared as array_record, read by index without TensorFlow.

`tfds.builder(name).as_data_source(split)` gives random access to any prepared split string
('train', 'train[:90%]', ...); images of varying size (caltech_birds2011, stanford_dogs,
imagenet2012) come back as they are, and only the augmentation makes them one size. Preparing
(`download_and_prepare`) needs internet, and TensorFlow to encode images; reading needs neither.
With several processes only process 0 prepares; the others wait for it (`create_tfds_source`).
"""
import os
from typing import Optional

import jax
import numpy as np
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from sdd_jax.data.sources import SOURCES, DataError, Source


def _missing_hint(builder, data_config) -> str:
  """One line: how to get `builder`'s data set in place."""
  name = data_config.name
  manual_dir = data_config.manual_dir or os.path.join(builder.data_dir_root, 'downloads', 'manual')
  if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    fetch = (f'put its archives ({" ".join(builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())}) in '
             f'{manual_dir} and run `tfds build {name} --file_format=array_record '
             f'--data_dir={builder.data_dir_root} --manual_dir={manual_dir}`')
  else:
    fetch = (f'run `tfds build {name} --file_format=array_record '
             f'--data_dir={builder.data_dir_root}` (needs internet and TensorFlow)'
             + ('' if data_config.download else ' or set config.data.download=True'))
  return (f'tfds data set {name!r} is not prepared in {builder.data_dir_root}: {fetch}; or '
          f"switch config.data.source to 'npz'/'folder' with config.data.path")


class TfdsSource(Source):
  """One split of a prepared TFDS data set; `labels()` is read once (images left undecoded)."""

  def __init__(self, builder, split: str, image_key: str, label_key: str):
    features = builder.info.features
    for key in (image_key, label_key):
      if key not in features:
        raise DataError(f'tfds data set {builder.name!r} has no feature {key!r}; its features '
                        f'are {sorted(features.keys())}; set config.data.image_key/label_key')
    if not isinstance(features[label_key], tfds.features.ClassLabel):
      raise DataError(f'tfds data set {builder.name!r}: feature {label_key!r} is '
                      f'{type(features[label_key]).__name__}, not a ClassLabel (class indices); '
                      'set config.data.label_key to its class label feature')
    try:
      self._examples = builder.as_data_source(split=split)
    except (ValueError, NotImplementedError, KeyError) as error:
      raise DataError(f'tfds data set {builder.name!r}: cannot read split {split!r} by index '
                      f'({error}); prepare it with `tfds build {builder.name} '
                      f'--file_format=array_record`') from error
    self._builder, self._split = builder, split
    self._image_key, self._label_key = image_key, label_key
    self.num_classes = features[label_key].num_classes
    self._labels: Optional[np.ndarray] = None

  def __len__(self) -> int:
    return len(self._examples)

  def __getitem__(self, index):
    example = self._examples[int(index)]
    image = np.asarray(example[self._image_key])
    return {'image': image[..., None] if image.ndim == 2 else image,
            'label': int(example[self._label_key])}

  def labels(self) -> np.ndarray:
    if self._labels is None:
      features = self._builder.info.features
      skip = {key: tfds.decode.SkipDecoding() for key, feature in features.items()
              if isinstance(feature, tfds.features.Image)}
      try:
        examples = self._builder.as_data_source(split=self._split, decoders=skip)
        labels = [examples[i][self._label_key] for i in range(len(examples))]
      except ImportError:  # tfds.testing.mock_data encodes skipped images with TensorFlow
        labels = [self._examples[i][self._label_key] for i in range(len(self._examples))]
      self._labels = np.array(labels, np.int64)
    return self._labels


def _barrier(name: str) -> None:
  """Every process waits here until all have arrived (a collective over all devices)."""
  multihost_utils.sync_global_devices(name)


def _prepare(builder, data_config) -> None:
  """`download_and_prepare` as array_record (if `download`), or DataError (one line)."""
  if not data_config.download:
    raise DataError(_missing_hint(builder, data_config))
  download_config = tfds.download.DownloadConfig(manual_dir=data_config.manual_dir)
  try:
    builder.download_and_prepare(file_format='array_record', download_config=download_config)
  except Exception as error:  # pylint: disable=broad-except
    reason = ' '.join(f'{type(error).__name__}: {error}'.split())[:300]
    raise DataError(f'preparing failed ({reason}); {_missing_hint(builder, data_config)}'
                    ) from error


@SOURCES.register('tfds')
def create_tfds_source(data_config, split: str) -> TfdsSource:
  """Checks that `data_config.name` is prepared (preparing it if `download`), then opens `split`.

  With several processes only process 0 prepares (downloads, builds) it; every process then
  waits at a barrier, and a process other than 0 that still does not find it prepared (its
  `data_dir` is not the folder process 0 wrote, e.g. a local disk per host) fails with one line.
  """
  def create_builder():
    return tfds.builder(data_config.name, data_dir=data_config.data_dir)

  process, processes = jax.process_index(), jax.process_count()
  if processes == 1:
    builder = create_builder()
    if not builder.is_prepared():
      _prepare(builder, data_config)
    return TfdsSource(builder, split, data_config.image_key, data_config.label_key)
  failure = None
  if process == 0:
    builder = create_builder()
    if not builder.is_prepared():
      try:
        _prepare(builder, data_config)
      except DataError as error:  # raised after the barrier: the others must not wait forever
        failure = error
  _barrier(f'sdd_jax tfds {data_config.name} prepared')
  if failure is not None:
    raise failure
  builder = create_builder()  # after the barrier: what process 0 prepared
  if not builder.is_prepared():
    raise DataError(f'process {process} of {processes}: tfds data set {data_config.name!r} is '
                    f'not prepared in {builder.data_dir_root}, which process 0 prepares: set '
                    'config.data.data_dir to a folder every host reads (e.g. '
                    'gs://BUCKET/tensorflow_datasets) or prepare it on every host first; '
                    + _missing_hint(builder, data_config))
  return TfdsSource(builder, split, data_config.image_key, data_config.label_key)
