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
builds, and DenseNet has no FPN extractor here. So is, before anything is written, a file that
safetensors cannot read, whose metadata lacks what the detector needs (`num_classes`, `mean`,
`std`), whose tensors do not have the names and shapes of torchvision's network (a ResNet
trained with another `width`, say), or that holds NaN or infinity.
"""
import json
import math
import re
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import safetensors
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


def _statistics(text: Optional[str]) -> Optional[list]:
  """The metadata's `mean` / `std`: a JSON list of 3 finite numbers, else None."""
  try:
    value = json.loads(text)
  except (TypeError, ValueError):
    return None
  numbers = isinstance(value, list) and len(value) == 3 and all(
      isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
  return value if numbers else None


def _metadata_problem(metadata: Dict[str, str]) -> Optional[str]:
  """What the detector cannot build from the file's metadata (None when nothing)."""
  if not re.fullmatch(r'[1-9]\d*', metadata.get('num_classes', '')):
    return f'metadata num_classes {metadata.get("num_classes")!r} is not a whole number >= 1'
  for key in ('mean', 'std'):
    if _statistics(metadata.get(key)) is None:
      return f'metadata {key} {metadata.get(key)!r} is not a JSON list of 3 finite numbers'
  if not all(v > 0 for v in _statistics(metadata['std'])):
    return f'metadata std {metadata["std"]} has a value <= 0'
  return None


def expected_shapes(metadata: Dict[str, str]) -> Dict[str, Tuple[int, ...]]:
  """{key: shape} of the state_dict `create_resnet` loads (built on the meta device: no
  memory, no time)."""
  with torch.device('meta'):
    resnet = _torchvision_resnet(metadata)
  return {k: tuple(v.shape) for k, v in resnet.state_dict().items()}


def shape_problem(arrays: Dict[str, np.ndarray], expected: Dict[str, Tuple[int, ...]],
                  network: str) -> Optional[str]:
  """The first key of `expected` missing from `arrays` or stored in another shape, else the
  first key of `arrays` not in `expected` (`num_batches_tracked` ignored: FrozenBatchNorm2d
  drops it); None when they match."""
  for key, shape in expected.items():
    if key not in arrays:
      return f'{key} is missing ({network} needs it, {shape})'
    if tuple(np.shape(arrays[key])) != shape:
      return f'{key} is {tuple(np.shape(arrays[key]))} in the file, {network} needs {shape}'
  extra = [k for k in arrays if k not in expected and not k.endswith('num_batches_tracked')]
  if extra:
    return f'{extra[0]} is not in {network}'
  return None


def read_backbone(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
  """(arrays, metadata) of an exported ResNet that `create_resnet` loads; BackboneError (one
  line naming the file and what differs) for anything else."""
  try:
    arrays, metadata = torchvision_io.read(path)
  except (safetensors.SafetensorError, KeyError) as e:  # safetensors' own errors
    cause = f'tensor dtype {e} not readable' if isinstance(e, KeyError) else str(e)
    raise BackboneError(f'{path}: cannot be read as a safetensors file ({cause}); give a file '
                        'written by python -m sdd_jax.export') from None
  name = metadata.get('torchvision_model', '')
  if not re.fullmatch(r'resnet\d+', name) or not hasattr(torchvision.models, name):
    raise BackboneError(f'{path}: not a ResNet exported by python -m sdd_jax.export (model '
                        f'{metadata.get("model", "unknown")!r}); the detection recipe builds a '
                        'ResNet-FPN: export resnet18 ... resnet152')
  if 'stem' not in metadata:
    raise BackboneError(f"{path}: the metadata has no 'stem' (python -m sdd_jax.export writes "
                        "'imagenet' or 'cifar'); export the backbone again with it")
  if metadata.get('stem') != 'imagenet':
    raise BackboneError(f'{path}: {metadata.get("model")} has a {metadata.get("stem")} stem '
                        '(not the ImageNet 7x7 stride-2 conv and max-pool), which torchvision\'s '
                        f'ResNet-FPN does not build; fine-tune a {name} trained with the '
                        'ImageNet stem')
  fix = 'export the backbone again with python -m sdd_jax.export'
  problem = _metadata_problem(metadata)
  if problem:
    raise BackboneError(f'{path}: {problem}; {fix}')
  network = f"torchvision's {name} ({metadata['num_classes']} classes)"
  problem = shape_problem(arrays, expected_shapes(metadata), network)
  if problem:
    raise BackboneError(f'{path} does not fit the detector\'s backbone: {problem}; the recipe '
                        f'builds {network} as is: fine-tune a model trained without width or '
                        'depth overrides')
  for key, value in arrays.items():
    if not np.isfinite(value).all():
      raise BackboneError(f'{path}: {key} holds NaN or infinity; {fix} from a checkpoint '
                          'whose weights are finite')
  return arrays, metadata


def _torchvision_resnet(metadata: Dict[str, str]) -> torch.nn.Module:
  return getattr(torchvision.models, metadata['torchvision_model'])(
      num_classes=int(metadata['num_classes']), norm_layer=misc.FrozenBatchNorm2d)


def _torch_ready(array: np.ndarray) -> np.ndarray:
  """A copy torch takes: float16, bfloat16 (ml_dtypes, which torch.from_numpy refuses) and
  float64 weights as float32, the detector's parameter dtype; integer counters as they are."""
  if array.dtype.name in ('float16', 'bfloat16', 'float64'):
    return np.array(array, np.float32)
  return np.array(array)


def create_resnet(arrays: Dict[str, np.ndarray], metadata: Dict[str, str]) -> torch.nn.Module:
  """`torchvision.models.<resnet>` with FrozenBatchNorm2d, loaded from `arrays` strictly."""
  resnet = _torchvision_resnet(metadata)
  resnet.load_state_dict({k: torch.from_numpy(_torch_ready(v)) for k, v in arrays.items()},
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
