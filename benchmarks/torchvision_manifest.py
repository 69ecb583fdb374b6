"""Writes sdd_jax/models/torchvision_manifest.json: {model: {state_dict key: shape}} of
torchvision's ResNet-18 ... 152 and DenseNet-121 at 1000 classes, so that the tests can check
our exported key sets and shapes without torch. Needs torchvision (requirements-torch.txt):

  python benchmarks/torchvision_manifest.py
"""
import json
import os

import torchvision

NAMES = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'densenet121')


def main():
  out = {}
  for name in NAMES:
    model = getattr(torchvision.models, name)(weights=None)
    out[name] = {key: list(value.shape) for key, value in model.state_dict().items()}
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'sdd_jax',
                      'models', 'torchvision_manifest.json')
  with open(path, 'w', encoding='utf-8') as f:
    json.dump({'torchvision': torchvision.__version__, **out}, f, indent=0, sort_keys=True)
  print(f'{path}: {", ".join(f"{n} ({len(out[n])} keys)" for n in NAMES)}')


if __name__ == '__main__':
  main()
