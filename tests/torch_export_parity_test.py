"""Our networks and torchvision's, same weights, same logits (issue 15 item 3; needs the torch
extra, requirements-torch.txt; skipped without it).

Export: a Flax network with random weights, BatchNorm affine parameters and running statistics,
written by `torchvision_io.to_torchvision`, loads into
`torchvision.models.<name>()` with `strict=True` and gives eval-mode logits within 1e-4
(relative to the largest logit) of ours. Import: a torchvision network treated the same way,
saved with safetensors' torch API, read by `models.load_torchvision`, gives torch's logits.
The reference is torchvision's own forward pass, an independent implementation.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip('torch')
torchvision = pytest.importorskip('torchvision')
safetensors_torch = pytest.importorskip('safetensors.torch')

from sdd_jax import models  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from sdd_jax.models import torchvision_io  # noqa: E402  pylint: disable=g-import-not-at-top

NAMES = ['resnet18', 'resnet50', 'resnet152', 'densenet121']
CLASSES = 10
SIZE = 64  # 64x64 inputs: every stage keeps at least 2x2 positions
TOLERANCE = 1e-4


def _relative_error(ours, theirs) -> float:
  return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def _images(seed: int, n: int = 2) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(n, SIZE, SIZE, 3)).astype(np.float32)


def _our_logits(model, variables, images):
  with jax.default_matmul_precision('float32'):
    return np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images))


def _torch_logits(net, images):
  with torch.no_grad():
    return net(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))).numpy()


def _flax_network(name):
  """Every variable drawn with NumPy: conv / dense kernels ~ N(0, 2 / fan_in), BatchNorm scale ~
  U(0.5, 1.5), biases ~ N(0, 0.1), running mean ~ N(0, 0.3), running variance ~ U(0.5, 2) (the
  non-trivial statistics training leaves, drawn directly so that each network compiles once;
  the import test below moves torchvision's statistics with training-mode batches instead)."""
  model = models.get_model(name, num_classes=CLASSES)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)),
                                             train=False))
  rng = np.random.default_rng(2)
  draw = {'kernel': lambda s: rng.normal(0, np.sqrt(2 / np.prod(s[:-1])), s),
          'scale': lambda s: rng.uniform(0.5, 1.5, s), 'bias': lambda s: rng.normal(0, 0.1, s),
          'mean': lambda s: rng.normal(0, 0.3, s), 'var': lambda s: rng.uniform(0.5, 2.0, s)}
  return model, jax.tree_util.tree_map_with_path(
      lambda path, leaf: draw[path[-1].key](leaf.shape).astype(np.float32), shapes)


def _torch_network(name):
  torch.manual_seed(0)
  net = getattr(torchvision.models, name)(num_classes=CLASSES)
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5)
        module.bias.normal_(0, 0.1)
  net.train()
  with torch.no_grad():
    for seed in range(3):
      net(torch.from_numpy(_images(10 + seed, 4).transpose(0, 3, 1, 2) * 2 + 0.5))
  return net.eval()


@pytest.mark.parametrize('name', NAMES)
def test_exported_weights_give_torchvisions_logits(name):
  model, variables = _flax_network(name)
  state = {k: torch.from_numpy(np.array(v)) for k, v in
           torchvision_io.to_torchvision(name, variables, step=3).items()}
  net = getattr(torchvision.models, name)(num_classes=CLASSES)
  net.load_state_dict(state, strict=True)
  net.eval()
  images = _images(0)
  assert _relative_error(_our_logits(model, variables, images),
                         _torch_logits(net, images)) < TOLERANCE


@pytest.mark.parametrize('name', ['resnet18', 'densenet121'])
def test_torchvision_weights_load_into_our_network(name, tmp_path):
  net = _torch_network(name)
  path = str(tmp_path / f'{name}.safetensors')
  safetensors_torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
  variables = models.load_torchvision(name, path)
  model = models.get_model(name, num_classes=CLASSES)
  images = _images(5)
  assert _relative_error(_our_logits(model, variables, images),
                         _torch_logits(net, images)) < TOLERANCE
