"""The `folder` source: an ImageFolder tree `<path>/<split>/<class>/<image>`, decoded with PIL.

A file that is not an image is refused before training when the split is small enough to open
every header (`check_files`); a file whose pixels are corrupt is found when it is read, with the
same one-line `DataError` naming it (raised in grain's prefetch thread, re-raised in the
trainer, which keeps its last checkpoint).
"""
import os

import numpy as np
from PIL import Image

from sdd_jax.data.sources import IMAGE_EXTENSIONS, SOURCES, DataError, Source, split_file

HEADER_CHECK_LIMIT = 2000  # image headers opened per split before training (evenly spaced)


class FolderSource(Source):
  """ImageFolder layout `root/<split>/<class>/<image>`: classes are the sorted subfolder
  names, files are sorted by name; images decode with PIL to RGB uint8 [H, W, 3]."""

  def __init__(self, split_dir: str, num_classes: int):
    layout = f'expected the layout <path>/<split>/<class name>/<image file> ({split_dir})'
    if not os.path.isdir(split_dir):
      raise DataError(f'folder source: {split_dir} is not a folder; set config.data.path; '
                      + layout)
    self.classes = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    if len(self.classes) != num_classes:
      raise DataError(f'folder source: {split_dir} has {len(self.classes)} class folders but '
                      f'config.data.num_classes is {num_classes}; ' + layout)
    self.files, labels = [], []
    for label, name in enumerate(self.classes):
      class_dir = os.path.join(split_dir, name)
      files = sorted(f for f in os.listdir(class_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
      self.files += [os.path.join(class_dir, f) for f in files]
      labels += [label] * len(files)
    if not self.files:
      raise DataError(f'folder source: no image files ({", ".join(IMAGE_EXTENSIONS)}) under '
                      + split_dir + '; ' + layout)
    self._labels = np.array(labels, np.int64)
    self.num_classes = num_classes

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index):
    path = self.files[index]
    try:
      with Image.open(path) as image:
        pixels = np.asarray(image.convert('RGB'))
    except (OSError, ValueError, SyntaxError) as e:  # PIL: unidentified, truncated, broken
      raise DataError(f'folder source: {path} cannot be read as an image '
                      f'({type(e).__name__}: {" ".join(str(e).split())[:120]}); replace or '
                      'delete the file') from None
    return {'image': pixels, 'label': int(self._labels[index])}

  def check_files(self, limit: int = HEADER_CHECK_LIMIT) -> None:
    """Opens the header of every file (of `limit` evenly spaced ones in a bigger split):
    DataError naming the first file that is not an image. A file whose header is fine but whose
    pixels are corrupt is found when it is read (the same one-line DataError)."""
    files = self.files
    if len(files) > limit:
      files = [files[i] for i in np.linspace(0, len(files) - 1, limit).astype(int)]
    for path in files:
      try:
        with Image.open(path):
          pass
      except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f'folder source: {path} is not an image ({type(e).__name__}); replace '
                        'or delete the file') from None

  def labels(self) -> np.ndarray:
    return self._labels


@SOURCES.register('folder')
def create_folder_source(data_config, split: str) -> FolderSource:
  return FolderSource(split_file(data_config, split), data_config.num_classes)
