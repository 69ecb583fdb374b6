"""Models by name: `get_model('resnet18_cifar', num_classes=100)`.

Every model is a `base.StagedNetwork` (flax.linen) with `__call__`, `features`, `head`,
`stages` and `from_stage`; see base.py for the contract. Keyword arguments pass
through to the module and override the registered defaults, e.g. `head_hidden=(512,)`,
`dtype=jnp.bfloat16`.

Each model registers its tiny variant beside it: `tiny_kwargs(name)` are the constructor
options of a few-thousand-parameter version of the same architecture, the one that `:smoke`
configs and the tests use, e.g. `get_model(name, num_classes=10, **tiny_kwargs(name))`.

  variables = model.init(key, images, train=False)   # {'params'} (+ 'batch_stats' with BN)
  logits, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
"""
import functools
from typing import Any, Dict, Mapping, Optional

from sdd_jax.models import densenet
from sdd_jax.models import heads
from sdd_jax.models import resnet
from sdd_jax.models.base import StagedNetwork
from sdd_jax.models.densenet import DenseNet
from sdd_jax.models.heads import Head
from sdd_jax.models.resnet import ResNet
from sdd_jax.models.vit import ViT
from sdd_jax.registry import Registry

MODELS = Registry('model')
_TINY: Dict[str, dict] = {}


def get_model(name: str, num_classes: int | None = None, **kwargs) -> StagedNetwork:
  """Builds the registered model `name` with `num_classes` logits.

  An unknown `name` raises ValueError listing the known ones. `num_classes` is required
  (no silent 1000-way CIFAR model); other `kwargs` override the registered defaults.
  """
  build = MODELS.get(name)
  if num_classes is None:
    raise ValueError(f'get_model({name!r}): pass num_classes, e.g. num_classes=100')
  return build(num_classes=num_classes, **kwargs)


def tiny_kwargs(name: str) -> dict:
  """The constructor options of model `name`'s tiny variant (a fresh dict)."""
  MODELS.get(name)  # an unknown name lists the known ones
  return dict(_TINY[name])


def check_options(name: str, kwargs: Mapping[str, Any]) -> None:
  """Raises ValueError (one line) when model `name` cannot be built with the constructor
  options `kwargs` on top of its registered defaults (e.g. a ViT width that the heads do not
  divide); types and ranges of single options are the config schema's."""
  build = MODELS.get(name)
  model_class(name).check_options({**getattr(build, 'keywords', {}), **kwargs})


def model_class(name: str) -> type:
  """The flax module class of model `name` (e.g. `ViT`), for class facts such as
  `stage_outputs`."""
  build = MODELS.get(name)
  return getattr(build, 'func', build)


def _register(name: str, cls, tiny: dict, **defaults):
  """Registers `cls` with `defaults` as `name`, and its tiny variant's options `tiny`."""
  MODELS.register(name)(functools.partial(cls, **defaults))
  _TINY[name] = tiny


_basic, _bottleneck = resnet.BasicBlock, resnet.Bottleneck
# Tiny variants: one block per stage, 4 channels (ResNets) or growth 4 (DenseNets), ViT D=16.
_TINY_RESNET = dict(width=4, stage_sizes=(1, 1, 1, 1))
_TINY_DENSENET = dict(growth_rate=4, num_init_features=8, stage_sizes=(1, 1, 1, 1))
# Dropout and drop path 0: training needs no 'dropout' key.
_TINY_VIT = dict(hidden_size=16, num_heads=2, mlp_dim=32, stage_sizes=(1, 1, 1, 1), dropout=0.0,
                 drop_path=0.0)

# CIFAR: 3x3 stride-1 stem, no max-pool.
_register('resnet18_cifar', ResNet, _TINY_RESNET, stem='cifar', block_cls=_basic,
          stage_sizes=(2, 2, 2, 2))
_register('resnet34_cifar', ResNet, _TINY_RESNET, stem='cifar', block_cls=_basic,
          stage_sizes=(3, 4, 6, 3))
_register('resnet50_cifar', ResNet, _TINY_RESNET, stem='cifar', block_cls=_bottleneck,
          stage_sizes=(3, 4, 6, 3))
_register('preact_resnet18_cifar', ResNet, _TINY_RESNET, stem='cifar',
          block_cls=resnet.PreActBlock, stage_sizes=(2, 2, 2, 2))
_register('densenet121_cifar', DenseNet, _TINY_DENSENET, stem='cifar',
          stage_sizes=(6, 12, 24, 16))
# ViT for 32x32 images: 4x4 patches; 12 blocks in 4 stages of 3; stochastic depth 0.1.
_register('vit_tiny_cifar', ViT, _TINY_VIT, patch_size=4, hidden_size=192, num_heads=3,
          mlp_dim=768, stage_sizes=(3, 3, 3, 3), dropout=0.0, drop_path=0.1)
_register('vit_small_cifar', ViT, _TINY_VIT, patch_size=4, hidden_size=384, num_heads=6,
          mlp_dim=1536, stage_sizes=(3, 3, 3, 3), dropout=0.0, drop_path=0.1)

# ImageNet: torchvision architectures (7x7/2 stem + max-pool).
_register('resnet18', ResNet, _TINY_RESNET, stem='imagenet', block_cls=_basic,
          stage_sizes=(2, 2, 2, 2))
_register('resnet34', ResNet, _TINY_RESNET, stem='imagenet', block_cls=_basic,
          stage_sizes=(3, 4, 6, 3))
_register('resnet50', ResNet, _TINY_RESNET, stem='imagenet', block_cls=_bottleneck,
          stage_sizes=(3, 4, 6, 3))
_register('resnet101', ResNet, _TINY_RESNET, stem='imagenet', block_cls=_bottleneck,
          stage_sizes=(3, 4, 23, 3))
_register('resnet152', ResNet, _TINY_RESNET, stem='imagenet', block_cls=_bottleneck,
          stage_sizes=(3, 8, 36, 3))
_register('densenet121', DenseNet, _TINY_DENSENET, stem='imagenet', stage_sizes=(6, 12, 24, 16))


def load_torchvision(name: str, path: str, num_classes: Optional[int] = None,
                     skip_head: bool = False, channels: Optional[int] = None,
                     image_size: int = 32, **kwargs):
  """Flax variables {'params', 'batch_stats'} of model `name` from a safetensors file in
  torchvision's layout (`python -m sdd_jax.export`, or a torchvision state_dict saved with
  `safetensors.torch.save_file`; float32, float16 or bfloat16, cast to the parameters' dtype).
  `num_classes` defaults to the file's classifier and `channels` (the input's) to its first
  convolution's (1 for a grayscale run's export); with `skip_head` a classifier of another
  class count is left at its initialisation. ExportError (one line) names the file and every
  mismatch."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from sdd_jax.models import torchvision_io  # pylint: disable=import-outside-toplevel
  arrays, _ = torchvision_io.read(path)
  head = 'classifier.bias' if torchvision_io.torchvision_name(name).startswith('densenet') \
      else 'fc.bias'
  if num_classes is None and head in arrays and arrays[head].ndim == 1:
    num_classes = int(arrays[head].shape[0])
  stem = arrays.get(torchvision_io.stem_key(name))
  if channels is None:
    channels = int(stem.shape[1]) if stem is not None and stem.ndim == 4 else 3
  model = get_model(name, num_classes=num_classes or 1000, **kwargs)
  torchvision_io.check_exportable(name, model)
  init = functools.partial(model.init, jax.random.key(0),
                           jnp.zeros((1, image_size, image_size, channels)), train=False)
  target = jax.device_get(init()) if skip_head else jax.eval_shape(init)
  return torchvision_io.from_torchvision(name, arrays, target, skip_head=skip_head,
                                         where=path)
