"""Out-of-distribution sets for ODIN (docs/evaluation.md §5.3, §6), in their canonical order (§0.6).

A set is named in `config.evals.odin.sets` by one of:

- a known name: `svhn` (tfds `svhn_cropped`, test, sorted by `id`), `dtd` (tfds `dtd`,
  train+validation+test, sorted by `file_name`, shorter side resized to the in-distribution size
  (bilinear, antialiased) then centre-cropped), `lsun` / `lsun_resize` / `isun` (the ODIN
  archives `LSUN.tar.gz`, `LSUN_resize.tar.gz`, `iSUN.tar.gz` unpacked into
  `<folder_root>/LSUN`, `<folder_root>/LSUN_resize`, `<folder_root>/iSUN`);
- `NAME=/path/to/folder`: every image under the folder (ImageFolder-like `<class>/<image>` or
  flat), in sorted relative-path order (= torchvision ImageFolder, which ODIN used);
- `NAME=tfds:BUILDER[:SPLIT]` (split default `test`), sorted by `id` or `file_name` if present.

Folder images are decoded with PIL to RGB. Images that are not in-distribution size are
centre-cropped (or, if smaller, resized on the shorter side first). Nothing here downloads: a
missing set raises `MissingDataError` with one line saying what to fetch and where to put it.
"""
import dataclasses
import os
from typing import Callable, List, Tuple

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from sdd_jax.data import canonical
from sdd_jax.data.augment import resize_and_centre_crop
from sdd_jax.data.sources import IMAGE_EXTENSIONS, DataError, Source
from sdd_jax.data.tfds_source import TfdsSource

ODIN_README = 'the links in the facebookresearch/odin README'


class MissingDataError(DataError):
  """A data set that must be placed by hand is not there; the message says what and where."""


@dataclasses.dataclass(frozen=True)
class OodSet:
  """Where an OOD set comes from and how it is brought to the in-distribution size."""
  name: str  # the key: odin/<name>/...
  kind: str  # 'tfds' | 'folder'
  location: str  # tfds builder name, or folder path
  split: str = 'test'  # tfds only
  order_key: str = ''  # tfds feature that gives the canonical order ('' = first of id, file_name)
  resize_shorter: bool = False  # resize the shorter side to the size, then centre-crop
  archive: str = ''  # folder sets: the archive to download (for the message)


KNOWN_TFDS = {
    'svhn': OodSet('svhn', 'tfds', 'svhn_cropped', 'test', 'id'),
    'dtd': OodSet('dtd', 'tfds', 'dtd', 'train+validation+test', 'file_name', resize_shorter=True),
}
KNOWN_FOLDERS = {  # name -> (folder under folder_root, ODIN archive)
    'lsun': ('LSUN', 'LSUN.tar.gz'),
    'lsun_resize': ('LSUN_resize', 'LSUN_resize.tar.gz'),
    'isun': ('iSUN', 'iSUN.tar.gz'),
}


def parse_sets(specs, folder_root: str = '') -> List[OodSet]:
  """`specs`: a tuple of entries (or one comma-separated string) as in the module docstring."""
  if isinstance(specs, str):
    specs = (specs,)
  entries = [e.strip() for spec in specs for e in str(spec).split(',') if e.strip()]
  sets = []
  for entry in entries:
    name, _, where = entry.partition('=')
    name, where = name.strip(), where.strip()
    if not where:
      if name in KNOWN_TFDS:
        sets.append(KNOWN_TFDS[name])
      elif name in KNOWN_FOLDERS:
        folder, archive = KNOWN_FOLDERS[name]
        sets.append(OodSet(name, 'folder', os.path.join(folder_root, folder) if folder_root
                           else '', archive=archive))
      else:
        known = ', '.join([*KNOWN_TFDS, *KNOWN_FOLDERS])
        raise ValueError(f'config.evals.odin.sets: unknown OOD set {name!r}; use one of {known}, '
                         'NAME=/path/to/folder or NAME=tfds:BUILDER[:SPLIT]')
    elif where.startswith('tfds:'):
      builder, _, split = where[len('tfds:'):].partition(':')
      sets.append(OodSet(name, 'tfds', builder, split or 'test'))
    else:
      sets.append(OodSet(name, 'folder', where))
  names = [s.name for s in sets]
  if len(set(names)) != len(names):
    raise ValueError(f'config.evals.odin.sets: the names {names} repeat; give each set its own')
  return sets


class ImageFiles(Source):
  """Every image file under `root` (any depth), sorted by relative path component-wise (the
  ImageFolder order: class folder, then file name); label 0; PIL-decoded to RGB uint8."""

  num_classes = 1

  def __init__(self, root: str):
    files = []
    for directory, subdirs, names in os.walk(root, followlinks=True):
      subdirs.sort()
      rel = os.path.relpath(directory, root)
      parts = () if rel == '.' else tuple(rel.split(os.sep))
      files += [(*parts, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    self.root = root
    self.files = [os.path.join(root, *parts) for parts in sorted(files)]

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index):
    with Image.open(self.files[index]) as image:
      return {'image': np.asarray(image.convert('RGB')), 'label': 0}

  def labels(self) -> np.ndarray:
    return np.zeros(len(self.files), np.int64)


def make_transform(size: int, channels: int,
                   resize_shorter: bool) -> Callable[[np.ndarray], np.ndarray]:
  """uint8 [H, W, c] -> uint8 [size, size, channels] (§5.3 preprocessing table)."""

  def transform(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
      image = image[..., None]
    if image.shape[-1] != channels:
      if image.shape[-1] == 1:
        image = np.repeat(image, channels, axis=-1)
      elif channels == 1:
        image = np.round(image[..., :3].mean(axis=-1, keepdims=True)).astype(np.uint8)
      else:
        image = image[..., :channels]
    height, width = image.shape[:2]
    if resize_shorter or min(height, width) < size:
      return resize_and_centre_crop(image, size, size)
    if (height, width) != (size, size):
      top, left = (height - size) // 2, (width - size) // 2
      image = image[top:top + size, left:left + size]
    return image

  return transform


def _tfds_hint(builder_name: str, data_dir: str) -> str:
  return (f'on a machine with internet run `tfds build {builder_name} --file_format=array_record '
          f'--data_dir=DIR` and copy DIR/{builder_name.split("/")[0]} into {data_dir}, or set '
          'config.evals.odin.data_dir')


def open_set(ood_set: OodSet, data_dir: str = '') -> Tuple[Source, np.ndarray]:
  """(source, canonical order) of `ood_set`; MissingDataError when it is not on disk."""
  if ood_set.kind == 'folder':
    archive = (f'download {ood_set.archive} from {ODIN_README} and unpack it'
               if ood_set.archive else 'put its images')
    if not ood_set.location:  # a known folder set, but no folder_root
      folder = KNOWN_FOLDERS[ood_set.name][0]
      raise MissingDataError(f'OOD set {ood_set.name!r}: config.evals.odin.folder_root is not '
                             f'set; {archive} into <folder_root>/{folder}/ and set '
                             'config.evals.odin.folder_root')
    if not os.path.isdir(ood_set.location):
      raise MissingDataError(f'OOD set {ood_set.name!r}: folder {ood_set.location} not found; '
                             f'{archive} so that {ood_set.location}/ holds its images (any '
                             'depth)')
    source = ImageFiles(ood_set.location)
    if not len(source):
      raise MissingDataError(f'OOD set {ood_set.name!r}: no image files '
                             f'({", ".join(IMAGE_EXTENSIONS)}) under {ood_set.location}; '
                             f'{archive} there')
    return source, np.arange(len(source))
  builder = tfds.builder(ood_set.location, data_dir=data_dir or None)
  if not builder.is_prepared():
    raise MissingDataError(f'OOD set {ood_set.name!r}: tfds {ood_set.location!r} is not prepared '
                           f'in {builder.data_dir_root}; '
                           + _tfds_hint(ood_set.location, builder.data_dir_root))
  source = TfdsSource(builder, ood_set.split, 'image', 'label')
  order = canonical.tfds_order(builder, ood_set.split, ood_set.order_key or None)
  return source, np.arange(len(source)) if order is None else order


def describe(ood_set: OodSet) -> str:
  """One line for the report: where the set came from and how it was preprocessed."""
  if ood_set.kind == 'tfds':
    where = f'tfds {ood_set.location} split {ood_set.split!r}'
    order = f'sorted by {ood_set.order_key or "id/file_name"}'
  else:
    where, order = f'folder {ood_set.location}', 'sorted by relative path'
  prep = ('shorter side resized (bilinear, antialiased), centre crop' if ood_set.resize_shorter
          else 'centre crop if not in-distribution size')
  return f'{where}; {order}; {prep}'
