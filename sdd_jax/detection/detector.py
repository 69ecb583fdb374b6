"""torchvision's Faster R-CNN with an FPN over a ResNet exported by `python -m sdd_jax.export`.

The model is `fasterrcnn_resnet50_fpn`'s construction with another backbone, as torchvision's
references/detection recipe fine-tunes an ImageNet backbone: `torchvision.models.<resnet>()`
built with `FrozenBatchNorm2d` (BatchNorm statistics and affine parameters fixed at the
file's values), loaded from the file with `strict=True` (every key, the classifier included:
it is built at the file's class count, then left out of the detector by
`_resnet_fpn_extractor`), three trainable stages (layer2 to layer4; the stem and layer1
frozen), FPN levels P2-P6 with 256 channels and torchvision's default RPN and box heads. The
images are normalised with the file's own `mean` / `std` (the convention the backbone was
trained with) in `GeneralizedRCNNTransform`, resized to `min_size` / `max_size` (800 / 1333
for COCO).

A file that is not a ResNet with torchvision's ImageNet stem is refused in one line: a
CIFAR-stem network (3x3 stride-1 stem, no max-pool) is not what `torchvision.models.resnet*`
builds, and DenseNet has no FPN extractor here.
"""
import json
import re
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
import torchvision
from torchvision.models.detection import backbone_utils
from torchvision.models.detection import faster_rcnn
from torchvision.ops import misc

from sdd_jax.errors import UserError
from sdd_jax.models import torchvision_io

TRAINABLE_LAYERS = 3


class BackboneError(UserError):
  """A backbone file the detection recipe cannot use."""


def read_backbone(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
  """(arrays, metadata) of an exported ResNet; BackboneError (one line) for anything else."""
  arrays, metadata = torchvision_io.read(path)
  name = metadata.get('torchvision_model', '')
  if not re.fullmatch(r'resnet\d+', name):
    raise BackboneError(f'{path}: not a ResNet exported by python -m sdd_jax.export (model '
                        f'{metadata.get("model", "unknown")!r}); the detection recipe builds a '
                        'ResNet-FPN: export resnet18 ... resnet152')
  if metadata.get('stem') != 'imagenet':
    raise BackboneError(f'{path}: {metadata.get("model")} has a {metadata.get("stem")} stem '
                        '(3x3, stride 1, no max-pool), which torchvision\'s ResNet-FPN does not '
                        f'build; fine-tune a {name} trained with the ImageNet stem')
  return arrays, metadata


def create_resnet(arrays: Dict[str, np.ndarray], metadata: Dict[str, str]) -> torch.nn.Module:
  """`torchvision.models.<resnet>` with FrozenBatchNorm2d, loaded from `arrays` strictly."""
  resnet = getattr(torchvision.models, metadata['torchvision_model'])(
      num_classes=int(metadata['num_classes']), norm_layer=misc.FrozenBatchNorm2d)
  resnet.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()},
                         strict=True)
  return resnet


def create_detector(arrays: Dict[str, np.ndarray], metadata: Dict[str, str], num_classes: int,
                    min_size: int = 800, max_size: int = 1333,
                    box_score_thresh: float = 0.05) -> faster_rcnn.FasterRCNN:
  """Faster R-CNN + FPN over the file's ResNet.

  Args:
    arrays: the exported state_dict (torchvision names, NumPy arrays).
    metadata: the file's metadata (`torchvision_model`, `num_classes`, `mean`, `std`).
    num_classes: detector classes including background (index 0): COCO's 91, its category ids.
    min_size: the shorter image side after resizing.
    max_size: the longest side's cap.
    box_score_thresh: detections scoring below it are dropped (torchvision's 0.05).

  Returns:
    the model; `model(images, targets)` in train mode gives the loss dict, in eval mode the
    detections (`boxes` [n, 4] x1 y1 x2 y2 in input pixels, `labels`, `scores`).
  """
  backbone = backbone_utils._resnet_fpn_extractor(  # pylint: disable=protected-access
      create_resnet(arrays, metadata), TRAINABLE_LAYERS)
  mean: Sequence[float] = json.loads(metadata['mean'])
  std: Sequence[float] = json.loads(metadata['std'])
  return faster_rcnn.FasterRCNN(backbone, num_classes=num_classes, min_size=min_size,
                                max_size=max_size, image_mean=list(mean), image_std=list(std),
                                box_score_thresh=box_score_thresh)
