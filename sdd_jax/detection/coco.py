"""COCO 2017 for the detection recipe: the folder check, the box data set and COCOeval.

Layout (as the zips unpack): `ROOT/train2017/*.jpg`, `ROOT/val2017/*.jpg`,
`ROOT/annotations/instances_{train,val}2017.json`. A missing piece is one line naming the zips
to download and where to unzip them.

Targets follow torchvision's references/detection (`ConvertCocoPolysToMask`,
`_coco_remove_images_without_annotations`): crowd annotations are dropped from the targets,
boxes go from x, y, w, h to x1, y1, x2, y2, clipped to the image, and empty ones dropped; the
labels are COCO's category ids (1 ... 90, so 91 classes with the background 0). Training
leaves out the images without annotations or with only boxes of width or height <= 1 (an
image whose only annotations are crowds stays, with no boxes). Training images are flipped
horizontally with probability 0.5 by a coin that is a function of (seed, epoch, image id), so
the data of a resumed run, of any worker count and of any number of GPUs is the same.
"""
import contextlib
import io
import os
from typing import Dict, List, Sequence

import numpy as np
import torch
import torchvision
from pycocotools import coco as coco_lib
from pycocotools import cocoeval
from torchvision.transforms import functional

from sdd_jax.detection import annotations
from sdd_jax.errors import UserError

DOWNLOADS = ('http://images.cocodataset.org/zips/train2017.zip, '
             'http://images.cocodataset.org/zips/val2017.zip and '
             'http://images.cocodataset.org/annotations/annotations_trainval2017.zip')
METRICS = ('mAP', 'mAP50', 'mAP75', 'mAP_small', 'mAP_medium', 'mAP_large')  # COCOeval stats[:6]


class CocoMissing(UserError):
  """The COCO 2017 folder lacks images or annotations."""


def split_paths(root: str, split: str) -> Dict[str, str]:
  """{'images': folder, 'annotations': instances JSON} of `split` ('train2017' / 'val2017')."""
  return {'images': os.path.join(root, split),
          'annotations': os.path.join(root, 'annotations', f'instances_{split}.json')}


def check_root(root: str) -> None:
  """Raises CocoMissing (one line: what to download, where) unless both splits are there, the
  image folders as folders."""
  needed = [split_paths(root, s)[k] for s in ('train2017', 'val2017')
            for k in ('images', 'annotations')]
  missing = [p for p in needed if not os.path.exists(p)]
  if missing:
    raise CocoMissing(f'COCO 2017 is not in --coco_root {root}: {missing[0]} is missing; '
                      f'download {DOWNLOADS} and unzip them in {root} (giving train2017/, '
                      'val2017/ and annotations/instances_{train,val}2017.json)')
  for path in needed[::2]:
    if not os.path.isdir(path):
      raise CocoMissing(f'{path} is not a folder; unzip {os.path.basename(path)}.zip in {root}')


def _has_valid_annotation(annotations: Sequence[dict]) -> bool:
  """torchvision's reference: some annotation, and not all of them boxes of side <= 1."""
  return bool(annotations) and not all(any(o <= 1 for o in a['bbox'][2:]) for a in annotations)


def target_boxes(annotations: Sequence[dict], width: int, height: int):
  """(boxes [n, 4] float32 x1 y1 x2 y2, labels [n] int64) of the non-crowd annotations."""
  kept = [a for a in annotations if not a.get('iscrowd', 0)]
  boxes = torch.as_tensor([a['bbox'] for a in kept], dtype=torch.float32).reshape(-1, 4)
  boxes[:, 2:] += boxes[:, :2]
  boxes[:, 0::2].clamp_(min=0, max=width)
  boxes[:, 1::2].clamp_(min=0, max=height)
  labels = torch.as_tensor([a['category_id'] for a in kept], dtype=torch.int64)
  keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
  return boxes[keep], labels[keep]


def flips(seed: int, epoch: int, image_id: int) -> bool:
  """The augmentation's coin: True (flip) with probability 0.5, fixed by its arguments."""
  return bool(np.random.default_rng([seed, epoch, image_id]).random() < 0.5)


class CocoBoxes(torchvision.datasets.CocoDetection):
  """One split as (image [3, H, W] float32 in [0, 1], {'boxes', 'labels', 'image_id'}).

  The instances JSON and the header of every image kept are checked on construction
  (`annotations.read`, `annotations.check_images`): AnnotationError, one line. An image
  damaged past its header is ImageUnreadable, one line, when it is read.

  Attributes:
    ids: the image ids, sorted; in training without the images that have no annotations, and
      cut to the first `limit` when given.
    epoch: read by the flip coin; the training loop sets it before each epoch's loader.
  """

  def __init__(self, root: str, split: str, train: bool, seed: int = 0, limit: int = 0):
    paths = split_paths(root, split)
    # CocoDetection.__init__ without its unchecked read of the file: the same attributes.
    torchvision.datasets.VisionDataset.__init__(self, paths['images'])
    self.coco = coco_lib.COCO()
    self.coco.dataset = annotations.read(paths['annotations'])
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its indexing
      self.coco.createIndex()
    self.ids = sorted(self.coco.imgs)
    if train:
      self.ids = [i for i in self.ids if _has_valid_annotation(
          self.coco.loadAnns(self.coco.getAnnIds(imgIds=i, iscrowd=None)))]
    if limit:
      self.ids = self.ids[:limit]
    annotations.check_images(paths['images'], self.coco.loadImgs(self.ids), paths['annotations'])
    self.train, self.seed, self.epoch = train, seed, 0

  def _load_image(self, id: int):  # pylint: disable=redefined-builtin  (CocoDetection's name)
    return annotations.load_image(os.path.join(self.root, self.coco.loadImgs(id)[0]['file_name']))

  def __getitem__(self, index: int):
    image_id = self.ids[index]
    image = functional.pil_to_tensor(self._load_image(image_id)).float() / 255
    height, width = image.shape[1:]
    boxes, labels = target_boxes(self._load_target(image_id), width, height)
    if self.train and flips(self.seed, self.epoch, image_id):
      image = image.flip(-1)
      boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]],
                          dim=1)
    return image, {'boxes': boxes, 'labels': labels, 'image_id': image_id}


def num_classes(coco: coco_lib.COCO) -> int:
  """The largest category id + 1 (the background is 0): 91 for COCO, as torchvision's."""
  return max(coco.getCatIds()) + 1


def collate(batch):
  """A list of (image, target) -> (images, targets) tuples: Faster R-CNN takes lists."""
  return tuple(zip(*batch))


def detection_records(image_id: int, output: Dict[str, torch.Tensor]) -> List[dict]:
  """One image's detections as COCO result records (bbox x, y, w, h; rounded for the file)."""
  boxes = output['boxes'].detach().cpu().tolist()
  return [{'image_id': int(image_id), 'category_id': int(label),
           'bbox': [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
           'score': round(float(score), 5)}
          for (x1, y1, x2, y2), label, score in zip(
              boxes, output['labels'].tolist(), output['scores'].tolist())]


def evaluate_detections(coco_gt: coco_lib.COCO, detections: List[dict]) -> Dict[str, float]:
  """COCOeval (bbox) over every image of `coco_gt`; prints its summary table.

  Args:
    coco_gt: the ground truth (a split's `CocoBoxes.coco`).
    detections: COCO result records (`image_id`, `category_id`, `bbox` x y w h, `score`).

  Returns:
    {'mAP', 'mAP50', 'mAP75', 'mAP_small', 'mAP_medium', 'mAP_large'}: COCOeval's stats[0:6]
    x 100 (percent, as papers report them); None where COCOeval gives -1 (no ground truth in
    that area range).
  """
  if detections:  # loadRes adds keys to the records it is given: give it copies
    coco_dt = coco_gt.loadRes([dict(d) for d in detections])
  else:  # loadRes cannot take an empty list; an empty result set scores 0
    coco_dt = coco_lib.COCO()
    coco_dt.dataset = {'images': coco_gt.dataset['images'], 'annotations': [],
                       'categories': coco_gt.dataset['categories']}
    coco_dt.createIndex()
  evaluator = cocoeval.COCOeval(coco_gt, coco_dt, 'bbox')
  evaluator.evaluate()
  evaluator.accumulate()
  evaluator.summarize()
  return {name: (None if stat < 0 else float(stat) * 100)
          for name, stat in zip(METRICS, evaluator.stats[:6])}
