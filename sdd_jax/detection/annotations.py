"""COCO instances files and the images they list, read and checked before a run writes anything.

`read(path)` parses `instances_{train,val}2017.json` and checks the structure the recipe and
pycocotools rely on: an object with `images` (`id`, `file_name`), `annotations` (`id`,
`image_id`, `category_id`, `bbox` [x, y, w, h] of finite numbers with w, h >= 0, `area`) and a
non-empty `categories` (`id` >= 1; 0 is the background), ids unique, every annotation's image
and category listed. `check_images` opens each listed image's header (PIL reads a few bytes:
32 us an image measured on 640x480 JPEGs in the page cache, so about 4 s for COCO's 123k
images; more from a cold or network disk, still small next to a run of hours). A file damaged
after its header (a truncated JPEG) is found only when training reads it. Each
problem is one line naming the file and the first entry at fault; pycocotools alone would
skip a missing section silently or fail later with a KeyError.
"""
import json
import math
import os
from typing import Iterable, Optional

from PIL import Image

from sdd_jax.errors import UserError

FIELDS = {'images': ('id', 'file_name'),
          'annotations': ('id', 'image_id', 'category_id', 'bbox', 'area'),
          'categories': ('id',)}


class AnnotationError(UserError):
  """An instances JSON, or an image it lists, that the detection recipe cannot use."""


class ImageUnreadable(AnnotationError):
  """An image found damaged when training or evaluation reads it (past its header).

  A DataLoader worker's exception comes back as `type(e)(its traceback as text)`, whose last
  line is `<module>.ImageUnreadable: <message>`: the constructor keeps that message, so the
  error stays one line with `--workers` > 0 too.
  """

  def __init__(self, message: str):
    lines = message.strip().splitlines()
    if len(lines) > 1:
      message = lines[-1].partition(': ')[2]
    super().__init__(message)


def load_image(path: str) -> Image.Image:
  """The RGB image at `path`; ImageUnreadable (one line) when PIL cannot decode it."""
  try:
    with Image.open(path) as image:
      return image.convert('RGB')
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise ImageUnreadable(f'{path} cannot be read as an image ({type(e).__name__}: {e}); '
                          'replace it with the original file and run the same command (it '
                          'resumes from the last checkpoint)') from None


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _entry_problem(section: str, index: int, entry) -> Optional[str]:
  """What is wrong with one entry of `section` (None when nothing is)."""
  where = f'{section}[{index}]'
  if not isinstance(entry, dict):
    return f'{where} is a {type(entry).__name__}, not an object'
  missing = [k for k in FIELDS[section] if k not in entry]
  if missing:
    return f'{where} has no {missing[0]!r}'
  if not _is_int(entry['id']) or (section == 'categories' and entry['id'] < 1):
    return (f'{where} has id {entry["id"]!r}; ids are whole numbers'
            + (' >= 1 (0 is the background)' if section == 'categories' else ''))
  if section == 'images' and not (isinstance(entry['file_name'], str) and entry['file_name']):
    return f'{where} has file_name {entry["file_name"]!r}, not a file name'
  if section == 'annotations':
    box = entry['bbox']
    if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box))
            and box[2] >= 0 and box[3] >= 0):
      return (f'{where} has bbox {box!r}, not [x, y, width, height] of finite numbers with '
              'sides >= 0')
    if not _is_number(entry['area']):
      return f'{where} has area {entry["area"]!r}, not a finite number'
  return None


def _problem(dataset) -> Optional[str]:
  """The first thing wrong with a parsed instances JSON (None when nothing is)."""
  if not isinstance(dataset, dict):
    return (f'holds a JSON {type(dataset).__name__}, not an object with images, annotations '
            'and categories')
  ids = {}
  for section in FIELDS:
    entries = dataset.get(section)
    if not isinstance(entries, list):
      return f'has no {section!r} list' if entries is None else f'{section!r} is not a list'
    for index, entry in enumerate(entries):
      problem = _entry_problem(section, index, entry)
      if problem:
        return problem
    ids[section] = {entry['id'] for entry in entries}
    if len(ids[section]) < len(entries):
      return f'{section!r} repeats an id'
  if not dataset['categories']:
    return "'categories' is empty"
  for index, entry in enumerate(dataset['annotations']):
    for key, section in (('image_id', 'images'), ('category_id', 'categories')):
      if entry[key] not in ids[section]:
        return f'annotations[{index}] has {key} {entry[key]!r}, which {section!r} does not list'
  return None


def read(path: str) -> dict:
  """The instances JSON at `path`, its structure checked; AnnotationError (one line) naming the
  file and the first problem."""
  fix = f"give COCO 2017's {os.path.basename(path)} (from annotations_trainval2017.zip)"
  try:
    with open(path, 'rb') as f:
      dataset = json.load(f)
  except json.JSONDecodeError as e:
    raise AnnotationError(f'{path}: not valid JSON ({e.msg} at line {e.lineno} column '
                          f'{e.colno}); {fix}') from None
  except UnicodeDecodeError:
    raise AnnotationError(f'{path}: not UTF-8 text; {fix}') from None
  except (OSError, RecursionError) as e:
    raise AnnotationError(f'{path}: cannot be read ({type(e).__name__}: '
                          f'{getattr(e, "strerror", None) or e}); {fix}') from None
  problem = _problem(dataset)
  if problem:
    raise AnnotationError(f'{path}: {problem}; {fix}')
  return dataset


def check_images(folder: str, images: Iterable[dict], listed_in: str) -> None:
  """AnnotationError (one line) for the first of `images` (records with `file_name`) that is
  missing under `folder` or not an image file PIL can identify."""
  for image in images:
    path = os.path.join(folder, image['file_name'])
    try:
      with Image.open(path):  # the header only
        pass
    except FileNotFoundError:
      raise AnnotationError(f'{path} is missing (listed in {listed_in}); put the split\'s '
                            'images back (unzip it again) or give another --coco_root') from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
      raise AnnotationError(f'{path} cannot be read as an image ({type(e).__name__}: '
                            f'{getattr(e, "strerror", None) or e}; listed in {listed_in}); '
                            'replace it with the original file') from None
