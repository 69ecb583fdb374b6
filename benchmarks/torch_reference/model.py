"""The SD-Dropout authors' network in PyTorch: a torchvision-style CIFAR ResNet-18.

Layer for layer the same network as `sdd_jax.models.resnet.ResNet(stem='cifar',
block_cls=BasicBlock)`: a 3x3 stride-1 stem conv + BN + ReLU (no max-pool), four stages of
`stage_sizes` BasicBlocks with `width * 2**k` channels (stages 2-4 stride 2; a 1x1 conv + BN
projection where the shape changes), global average pooling and one linear head. Pooled
features D = 8 * width.

Initialisation as torchvision's ResNet: convs `kaiming_normal_(mode='fan_out',
nonlinearity='relu')`, BatchNorm weight 1 / bias 0, `nn.Linear` left at PyTorch's default
(weight and bias uniform in +-1/sqrt(fan_in)). BatchNorm is PyTorch's: momentum 0.1, eps 1e-5,
running variance updated with the *unbiased* batch variance (flax uses the biased one; see
README.md).

Module names mirror the flax parameter tree (`stem_conv`, `layers.0.block0.conv1`, ...,
`classifier`), so `load_flax_variables` is a name-by-name copy.
"""
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
  return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
  """conv3x3(stride)-BN-ReLU, conv3x3-BN, + shortcut (identity or 1x1 conv + BN), ReLU."""

  def __init__(self, cin: int, cout: int, stride: int, bn_momentum: float):
    super().__init__()
    self.conv1 = _conv(cin, cout, 3, stride)
    self.bn1 = nn.BatchNorm2d(cout, momentum=bn_momentum)
    self.conv2 = _conv(cout, cout, 3, 1)
    self.bn2 = nn.BatchNorm2d(cout, momentum=bn_momentum)
    self.downsample_conv = self.downsample_bn = None
    if stride != 1 or cin != cout:
      self.downsample_conv = _conv(cin, cout, 1, stride)
      self.downsample_bn = nn.BatchNorm2d(cout, momentum=bn_momentum)

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = x if self.downsample_conv is None else self.downsample_bn(self.downsample_conv(x))
    return F.relu(y + shortcut)


class CifarResNet(nn.Module):
  """`features(x)` -> pooled [batch, 8 * width]; `classifier(features)` -> logits."""

  def __init__(self, num_classes: int, width: int = 64, in_channels: int = 3,
               stage_sizes: Sequence[int] = (2, 2, 2, 2), bn_momentum: float = 0.1):
    super().__init__()
    self.stem_conv = _conv(in_channels, width, 3, 1)
    self.stem_bn = nn.BatchNorm2d(width, momentum=bn_momentum)
    layers, cin = [], width
    for i, num_blocks in enumerate(stage_sizes):
      cout = width * 2**i
      blocks = nn.Module()
      for j in range(num_blocks):
        blocks.add_module(f'block{j}', BasicBlock(cin, cout, (1 if i == 0 else 2) if j == 0
                                                  else 1, bn_momentum))
        cin = cout
      layers.append(blocks)
    self.layers = nn.ModuleList(layers)
    self.classifier = nn.Linear(cin, num_classes)
    for m in self.modules():  # torchvision's ResNet initialisation
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
      elif isinstance(m, nn.BatchNorm2d):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)

  def features(self, x: torch.Tensor) -> torch.Tensor:
    """Images NCHW -> pooled features [batch, D]."""
    x = F.relu(self.stem_bn(self.stem_conv(x)))
    for blocks in self.layers:
      for block in blocks.children():
        x = block(x)
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.classifier(self.features(x))


def _flatten(tree: Mapping, prefix=()) -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = np.asarray(value)
  return out


def _torch_name(path) -> str:
  """('layers_1', 'block0', 'conv1') -> 'layers.1.block0.conv1'."""
  parts = []
  for part in path:
    if part.startswith('layers_'):
      parts += ['layers', part[len('layers_'):]]
    elif part == 'output':  # flax Head's Dense is classifier/output; torch's is classifier
      continue
    else:
      parts.append(part)
  return '.'.join(parts)


def load_flax_variables(model: CifarResNet, variables: Mapping) -> None:
  """Copies flax {'params', 'batch_stats'} of the same architecture into `model` in place.

  conv kernel HWIO -> OIHW; dense kernel [in, out] -> weight [out, in]; BN scale/bias ->
  weight/bias, batch_stats mean/var -> running_mean/running_var. Every torch tensor must be
  written exactly once (a missing or extra name raises KeyError).
  """
  state = {}
  for path, value in _flatten(variables['params']).items():
    name, leaf = _torch_name(path[:-1]), path[-1]
    if leaf == 'kernel' and value.ndim == 4:
      state[f'{name}.weight'] = value.transpose(3, 2, 0, 1)
    elif leaf == 'kernel':
      state[f'{name}.weight'] = value.T
    elif leaf == 'scale':
      state[f'{name}.weight'] = value
    elif leaf == 'bias':
      state[f'{name}.bias'] = value
    else:
      raise KeyError(f'unexpected flax parameter {path}')
  for path, value in _flatten(variables.get('batch_stats', {})).items():
    name, leaf = _torch_name(path[:-1]), path[-1]
    state[f'{name}.running_{leaf}'] = value
  own = {k for k in model.state_dict() if not k.endswith('num_batches_tracked')}
  if set(state) != own:
    raise KeyError(f'flax -> torch names differ: only flax {sorted(set(state) - own)[:5]}, '
                   f'only torch {sorted(own - set(state))[:5]}')
  tensors = {k: torch.from_numpy(np.array(v, np.float32, copy=True)) for k, v in state.items()}
  model.load_state_dict(tensors, strict=False)


def flax_tree_from_torch(model: CifarResNet, like: Mapping) -> dict:
  """The inverse copy: torch tensors back into a nested dict shaped like the flax tree `like`
  ({'params': ..., 'batch_stats': ...}), as NumPy float32."""
  torch_state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}

  def convert(collection, path, value):
    name, leaf = _torch_name(path[:-1]), path[-1]
    if collection == 'batch_stats':
      return torch_state[f'{name}.running_{leaf}']
    if leaf == 'kernel':
      w = torch_state[f'{name}.weight']
      return w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T
    return torch_state[f'{name}.{"weight" if leaf == "scale" else "bias"}']

  def rebuild(collection, tree, prefix=()):
    return {k: rebuild(collection, v, prefix + (k,)) if isinstance(v, Mapping)
            else convert(collection, prefix + (k,), v) for k, v in tree.items()}

  return {c: rebuild(c, like[c]) for c in like}
