"""Our ResNets and DenseNets under torchvision's state_dict names and layouts, both ways.

`to_torchvision(name, variables, step)` gives `{torchvision key: NumPy array}`:
conv kernels OIHW (ours HWIO), linear weights [out, in] (ours [in, out]), BatchNorm
`weight` / `bias` / `running_mean` / `running_var` (ours `scale` / `bias` / `mean` / `var`) and
`num_batches_tracked` (int64: the checkpoint's step, one BatchNorm update per training step;
PyTorch reads it only when BatchNorm's momentum is None, which torchvision's models never set).
`from_torchvision(name, arrays, ...)` is the inverse, checking every shape.

The ImageNet-stem models (`resnet18` ... `resnet152`, `densenet121`) are exactly torchvision's
architectures, so `torchvision.models.<name>(num_classes=...)` loads the arrays with
`strict=True`. The CIFAR-stem variants (`*_cifar`) use the same names; their stem differs
(3x3 stride-1 conv, no max-pool; DenseNet: no stem BatchNorm), so only a model built with
that stem reads them. Not exportable (one line each): pre-activation ResNets and the ViT (no
torchvision counterpart) and a head with hidden layers (`head_hidden`).

The key names each torchvision model has are committed in `torchvision_manifest.json`
(written by `benchmarks/torchvision_manifest.py` with torchvision installed), so the tests
check our key set and shapes without torch.
"""
import json
import os
import re
from typing import Dict, Optional, Tuple

import ml_dtypes
import numpy as np

from sdd_jax.errors import UserError

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'torchvision_manifest.json')


class ExportError(UserError):
  """A model or checkpoint that cannot be written or read in torchvision's layout."""


def torchvision_name(name: str) -> str:
  """Our model name -> torchvision's (`resnet18_cifar` -> `resnet18`)."""
  return name[:-len('_cifar')] if name.endswith('_cifar') else name


def check_exportable(name: str, model) -> None:
  """Raises ExportError (one line) for a model that has no torchvision layout."""
  from sdd_jax.models import densenet, resnet  # pylint: disable=import-outside-toplevel
  family = torchvision_name(name)
  ok = (isinstance(model, resnet.ResNet) and model.block_cls in (resnet.BasicBlock,
                                                                 resnet.Bottleneck)
        and re.fullmatch(r'resnet\d+', family)) or (
            isinstance(model, densenet.DenseNet) and re.fullmatch(r'densenet\d+', family))
  if not ok:
    raise ExportError(f'model {name!r} has no torchvision counterpart; exportable: resnet18 ... '
                      'resnet152, densenet121 and their _cifar variants')
  if tuple(model.head_hidden):
    raise ExportError(f'model {name!r} has a head with hidden layers {tuple(model.head_hidden)}; '
                      'torchvision models have one linear layer (train with head_hidden=())')


def stem_key(name: str) -> str:
  """The torchvision key of the first convolution (its weight's dim 1: the input channels)."""
  return 'features.conv0.weight' if torchvision_name(name).startswith('densenet') else \
      'conv1.weight'


def _module_key(name: str, path: Tuple[str, ...]) -> str:
  """Our module path (without the leaf) -> torchvision's module name."""
  densenet = torchvision_name(name).startswith('densenet')
  if path[0] == 'classifier':
    return 'classifier' if densenet else 'fc'
  if path[0] in ('stem_conv', 'stem_bn'):
    return {('stem_conv', True): 'features.conv0', ('stem_bn', True): 'features.norm0',
            ('stem_conv', False): 'conv1', ('stem_bn', False): 'bn1'}[(path[0], densenet)]
  stage = int(path[0].split('_')[1])  # 'layers_2' -> 2
  if densenet:
    if path[1].startswith('layer'):  # 'layer3', 'norm1' -> denseblock/denselayer (1-based)
      return (f'features.denseblock{stage + 1}.denselayer{int(path[1][5:]) + 1}.'
              f'{path[2]}')
    if path[1] == 'transition_conv':
      return f'features.transition{stage + 1}.conv'
    return 'features.norm5' if stage == 3 else f'features.transition{stage + 1}.norm'
  block = int(path[1][5:])  # 'block4' -> 4
  part = {'downsample_conv': 'downsample.0', 'downsample_bn': 'downsample.1'}.get(path[2], path[2])
  return f'layer{stage + 1}.{block}.{part}'


_LEAF = {('params', 'scale'): 'weight', ('params', 'bias'): 'bias',
         ('params', 'kernel'): 'weight', ('batch_stats', 'mean'): 'running_mean',
         ('batch_stats', 'var'): 'running_var'}


def _leaves(tree, prefix=()):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def _to_torch(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:
    return np.ascontiguousarray(np.transpose(array, (3, 2, 0, 1)))  # HWIO -> OIHW
  if array.ndim == 2:
    return np.ascontiguousarray(array.T)  # [in, out] -> [out, in]
  return np.ascontiguousarray(array)


def _from_torch(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:
    return np.ascontiguousarray(np.transpose(array, (2, 3, 1, 0)))  # OIHW -> HWIO
  if array.ndim == 2:
    return np.ascontiguousarray(array.T)
  return np.ascontiguousarray(array)


def key_map(name: str, variables) -> Dict[Tuple[str, ...], str]:
  """{(collection, *our path): torchvision key} for every leaf of `variables`."""
  keys = {}
  for path, _ in _leaves({c: variables[c] for c in ('params', 'batch_stats') if c in variables}):
    collection, module, leaf = path[0], path[1:-1], path[-1]
    keys[path] = f'{_module_key(name, module)}.{_LEAF[(collection, leaf)]}'
  return keys


def to_torchvision(name: str, variables, step: int = 0) -> Dict[str, np.ndarray]:
  """The plain network's `variables` as torchvision's state_dict (NumPy arrays)."""
  out = {}
  tree = {c: variables[c] for c in ('params', 'batch_stats') if c in variables}
  leaves = dict(_leaves(tree))
  for path, key in key_map(name, variables).items():
    out[key] = _to_torch(np.asarray(leaves[path], np.float32))
    if key.endswith('.running_var'):
      out[key[:-len('running_var')] + 'num_batches_tracked'] = np.asarray(step, np.int64)
  return out


def from_torchvision(name: str, arrays: Dict[str, np.ndarray], target, *,
                     skip_head: bool = False, where: str = 'the weights'):
  """`arrays` (torchvision names) as Flax variables shaped like `target` (a variables tree, or
  its `jax.eval_shape`). With `skip_head`, a classifier whose class count differs keeps
  `target`'s values (which must then be arrays). Raises ExportError naming every missing key
  and shape mismatch in one line."""
  keys = key_map(name, target)
  head = 'classifier.' if torchvision_name(name).startswith('densenet') else 'fc.'
  stem = stem_key(name)
  problems, out = [], {}
  for path, key in keys.items():
    leaf = _leaf_of(target, path)
    want = tuple(leaf.shape)
    if key not in arrays:
      problems.append(f'{key}: missing')
      continue
    given = np.asarray(arrays[key])
    if not np.issubdtype(given.dtype, np.floating) and given.dtype != ml_dtypes.bfloat16:
      problems.append(f'{key}: {given.dtype} in the file, weights must be float32, float16 or '
                      'bfloat16')
      continue
    value = _from_torch(given)
    if value.shape != want:
      if skip_head and key.startswith(head):
        value = np.asarray(leaf)
      elif key == stem and given.ndim == 4 and value.shape[:2] + value.shape[3:] == (
          want[:2] + want[3:]):
        problems.append(f'{key}: the file\'s network takes {given.shape[1]} input channel(s), '
                        f'this model {want[2]} (the data\'s channels, len(config.data.mean))')
        continue
      else:
        problems.append(f'{key}: {tuple(given.shape)} in the file, this '
                        f'model needs {tuple(_to_torch(np.zeros(want)).shape)}')
        continue
    _set(out, path, value.astype(leaf.dtype))  # float16 / bfloat16 files: the parameter's dtype
  unused = sorted(set(arrays) - set(keys.values()) - {
      k for k in arrays if k.endswith('num_batches_tracked')})
  if unused:
    problems.append(f'not in this model: {", ".join(unused[:4])}'
                    + (f' and {len(unused) - 4} more' if len(unused) > 4 else ''))
  if problems:
    hint = ('; set config.model.init_from_skip_head=True to drop a classifier of another class '
            'count' if any(p.startswith(head) for p in problems) and not skip_head else '')
    raise ExportError(f'{where} do not fit {name}: {len(problems)} problem(s): '
                      + '; '.join(problems[:6]) + (' ...' if len(problems) > 6 else '') + hint)
  return out


def _leaf_of(tree, path):
  for part in path:
    tree = tree[part]
  return tree


def _set(tree, path, value):
  for part in path[:-1]:
    tree = tree.setdefault(part, {})
  tree[path[-1]] = value


def manifest(name: str) -> Optional[Dict[str, list]]:
  """{key: shape} of torchvision's `name` at 1000 classes, from the committed manifest."""
  with open(MANIFEST, encoding='utf-8') as f:
    return json.load(f).get(torchvision_name(name))


# safetensors dtypes -> NumPy (bfloat16 through ml_dtypes, which JAX uses); weights must be one of
# FLOATS (cast to the parameter's dtype), integers only count (`num_batches_tracked`).
DTYPES = {'F64': np.float64, 'F32': np.float32, 'F16': np.float16, 'BF16': ml_dtypes.bfloat16,
          'I64': np.int64, 'I32': np.int32, 'I16': np.int16, 'I8': np.int8, 'U64': np.uint64,
          'U32': np.uint32, 'U16': np.uint16, 'U8': np.uint8, 'BOOL': np.bool_}
FLOATS = ('F32', 'F16', 'BF16', 'F64')
_GIVE = 'give a file written by python -m sdd_jax.export or safetensors.torch.save_file'


def read(path: str, where: Optional[str] = None) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
  """(arrays, metadata) of a safetensors file (a local path or a gs:// URI), float16 and
  bfloat16 included; ExportError (one line, naming `where` or the file and the cause) when it
  is missing, a folder, empty, not a safetensors file (damaged header, truncated) or holds a
  dtype NumPy cannot take (float8)."""
  import safetensors  # pylint: disable=import-outside-toplevel
  from sdd_jax.workdir import paths as workdir_path  # pylint: disable=import-outside-toplevel
  where = where or path
  target = workdir_path.path(path)
  try:
    if target.is_dir():
      raise ExportError(f'{where} is a folder; {_GIVE}')
    data = target.read_bytes()
  except OSError as e:
    cause = 'no such file' if isinstance(e, FileNotFoundError) else (e.strerror or str(e))
    raise ExportError(f'{where}: {cause}; {_GIVE}') from None
  if not data:
    raise ExportError(f'{where} is empty (0 bytes); {_GIVE}')
  try:
    views = safetensors.deserialize(data)  # checks the header and that it covers the file
    header = json.loads(data[8:8 + int.from_bytes(data[:8], 'little')])
  except (safetensors.SafetensorError, ValueError) as e:
    cause = ' '.join(str(e).split()) or type(e).__name__
    raise ExportError(f'{where} is not a readable safetensors file ({cause}); {_GIVE}') from None
  arrays = {}
  for key, view in views:
    if view['dtype'] not in DTYPES:
      raise ExportError(f'{where}: {key} is {view["dtype"]}; save the weights as float32, '
                        'float16 or bfloat16')
    arrays[key] = np.frombuffer(view['data'], DTYPES[view['dtype']]).reshape(view['shape'])
  metadata = header.get('__metadata__') if isinstance(header, dict) else None
  return arrays, dict(metadata or {})
