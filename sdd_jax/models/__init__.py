"""Models by name: `get_model('resnet18_cifar', num_classes=100)`.

Every model is a `heads.StagedNetwork` (flax.linen) with `__call__`, `features`, `head`,
`stages` and `from_stage`; see heads.py for the contract. Keyword arguments pass
through to the module and override the registered defaults, e.g. `width=4,
stage_sizes=(1, 1, 1, 1)` for a tiny test model or `head_hidden=(512,)`,
`dtype=jnp.bfloat16`.

  variables = model.init(key, images, train=False)   # {'params', 'batch_stats'}
  logits, updates = model.apply(variables, images, train=True, mutable=['batch_stats'])
"""
import functools

from sdd_jax.models import densenet
from sdd_jax.models import heads
from sdd_jax.models import resnet
from sdd_jax.models.densenet import DenseNet
from sdd_jax.models.heads import Head, StagedNetwork
from sdd_jax.models.resnet import ResNet
from sdd_jax.registry import Registry

MODELS = Registry('model')


def get_model(name: str, num_classes: int | None = None, **kwargs) -> StagedNetwork:
  """Builds the registered model `name` with `num_classes` logits.

  An unknown `name` raises ValueError listing the known ones. `num_classes` is required
  (no silent 1000-way CIFAR model); other `kwargs` override the registered defaults.
  """
  build = MODELS.get(name)
  if num_classes is None:
    raise ValueError(f'get_model({name!r}): pass num_classes, e.g. num_classes=100')
  return build(num_classes=num_classes, **kwargs)


def _register(name: str, cls, **defaults):
  MODELS.register(name)(functools.partial(cls, **defaults))


_basic, _bottleneck = resnet.BasicBlock, resnet.Bottleneck

# CIFAR: 3x3 stride-1 stem, no max-pool.
_register('resnet18_cifar', ResNet, stem='cifar', block_cls=_basic, stage_sizes=(2, 2, 2, 2))
_register('resnet34_cifar', ResNet, stem='cifar', block_cls=_basic, stage_sizes=(3, 4, 6, 3))
_register('resnet50_cifar', ResNet, stem='cifar', block_cls=_bottleneck,
          stage_sizes=(3, 4, 6, 3))
_register('preact_resnet18_cifar', ResNet, stem='cifar', block_cls=resnet.PreActBlock,
          stage_sizes=(2, 2, 2, 2))
_register('densenet121_cifar', DenseNet, stem='cifar', stage_sizes=(6, 12, 24, 16))

# ImageNet: torchvision architectures (7x7/2 stem + max-pool).
_register('resnet18', ResNet, stem='imagenet', block_cls=_basic, stage_sizes=(2, 2, 2, 2))
_register('resnet34', ResNet, stem='imagenet', block_cls=_basic, stage_sizes=(3, 4, 6, 3))
_register('resnet50', ResNet, stem='imagenet', block_cls=_bottleneck, stage_sizes=(3, 4, 6, 3))
_register('resnet101', ResNet, stem='imagenet', block_cls=_bottleneck,
          stage_sizes=(3, 4, 23, 3))
_register('resnet152', ResNet, stem='imagenet', block_cls=_bottleneck,
          stage_sizes=(3, 8, 36, 3))
_register('densenet121', DenseNet, stem='imagenet', stage_sizes=(6, 12, 24, 16))
