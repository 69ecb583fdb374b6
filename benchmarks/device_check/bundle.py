r"""Makes what travels with the check to a machine without internet, into ignored folders:

  python -m benchmarks.device_check.bundle [--src ../shared/data/cifar10] [--skip_wheels]

1. `benchmarks/device_check/data/{train,test}.npz`: a class-balanced CIFAR-10 subset
   (`TRAIN_PER_CLASS` = 1,000 training and `TEST_PER_CLASS` = 200 test images a class, drawn by
   `numpy.random.default_rng(SEED)` in their original order; `benchmarks/cifar10_subset.py`'s
   selection), 36.9 MB uncompressed uint8, under the 40 MiB cap (checked before writing), and
   `manifest.json` with each split's count and the SHA-256 of its arrays' bytes (the npz files
   themselves carry zip timestamps, so their bytes differ between runs; their arrays do not).
2. `benchmarks/device_check/wheels/`: the wheels of WHEELS, for CPython 3.12 on manylinux
   x86-64 (the device image's Python, /work/.library/device/KINDS.md), by
   `pip download --no-deps --only-binary=:all:`; `promise` has no wheel on PyPI (sdist only)
   and is built here into a pure-Python wheel (`pip wheel --no-deps`).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import cifar10_subset
from sdd_jax.errors import UserError

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, 'data')
WHEELHOUSE = os.path.join(HERE, 'wheels')
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
SEED = 0
MAX_DATA_BYTES = 40 * 2**20
MAX_BUNDLE_BYTES = 64 * 2**20
# What the check imports at run time that the device image lacks (its package list:
# /work/.library/device/KINDS.md), found by importing the check's modules here and mapping
# sys.modules to distributions; versions are this project's environment's. `sdd_jax.data`
# imports tensorflow_datasets at the top (the tfds source), which needs the last four.
WHEELS = ('ml-collections==1.1.0', 'grain==0.2.18', 'array-record==0.8.6',
          'tensorflow-datasets==4.9.10', 'tensorflow-metadata==1.21.0', 'immutabledict==4.3.1',
          'toml==0.10.2', 'portpicker==1.6.0')
SDIST_ONLY = ('promise==2.3',)
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64',
             'manylinux2014_x86_64', 'manylinux1_x86_64')


class BundleError(UserError):
  """The source data is missing or the bundle would exceed its size cap."""


def arrays_sha256(arrays: dict) -> str:
  """SHA-256 over each array's name, dtype, shape and bytes, in name order."""
  digest = hashlib.sha256()
  for name in sorted(arrays):
    value = np.ascontiguousarray(arrays[name])
    digest.update(f'{name}:{value.dtype.str}:{value.shape};'.encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


def make_data(src: str, out: str, train_per_class: int = TRAIN_PER_CLASS,
              test_per_class: int = TEST_PER_CLASS, seed: int = SEED) -> dict:
  """Writes `<out>/{train,test}.npz` and `<out>/manifest.json`; -> the manifest."""
  splits = {}
  for split, per_class in (('train', train_per_class), ('test', test_per_class)):
    path = os.path.join(src, f'{split}.npz')
    if not os.path.isfile(path):
      raise BundleError(f'{path} does not exist; pass --src the folder that holds CIFAR-10\'s '
                        'train.npz and test.npz (../shared/data/cifar10)')
    with np.load(path, allow_pickle=False) as arrays:
      data = {k: arrays[k] for k in arrays.files}
    keep = cifar10_subset.subset_indices(data['y'], per_class, seed)
    data['x'], data['y'] = data['x'][keep], data['y'][keep]
    splits[split] = data
  total = sum(v.nbytes for data in splits.values() for v in data.values())
  if total > MAX_DATA_BYTES:
    raise BundleError(f'the subset would hold {total / 2**20:.1f} MiB, over the '
                      f'{MAX_DATA_BYTES / 2**20:.0f} MiB cap; ask for fewer examples a class')
  os.makedirs(out, exist_ok=True)
  manifest = {'seed': seed, 'train_per_class': train_per_class,
              'test_per_class': test_per_class, 'bytes': total, 'splits': {}}
  for split, data in splits.items():
    np.savez(os.path.join(out, f'{split}.npz'), **data)
    manifest['splits'][split] = {'examples': int(len(data['y'])), 'sha256': arrays_sha256(data)}
  with open(os.path.join(out, 'manifest.json'), 'w', encoding='utf-8') as f:
    json.dump(manifest, f, indent=1)
  return manifest


def download_wheels(out: str, python_version: str = '3.12') -> list:
  """The wheels of WHEELS (and SDIST_ONLY, built) into `out`; -> [(file, bytes)]."""
  os.makedirs(out, exist_ok=True)
  pip = [sys.executable, '-m', 'pip']
  platforms = [arg for p in PLATFORMS for arg in ('--platform', p)]
  subprocess.run(pip + ['download', '--no-deps', '--only-binary=:all:', '--python-version',
                        python_version, '--implementation', 'cp', *platforms, '-d', out,
                        *WHEELS], check=True)
  subprocess.run(pip + ['wheel', '--no-deps', '-w', out, *SDIST_ONLY], check=True)
  return sorted((f, os.path.getsize(os.path.join(out, f))) for f in os.listdir(out)
                if f.endswith('.whl'))


def folder_bytes(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(folder) for f in files)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--src', default=cifar10_subset.SHARED_CIFAR10)
  parser.add_argument('--skip_wheels', action='store_true')
  args = parser.parse_args(argv)
  try:
    manifest = make_data(args.src, DATA)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'{DATA}: {manifest["bytes"] / 2**20:.1f} MiB of arrays')
  if not args.skip_wheels:
    for name, size in download_wheels(WHEELHOUSE):
      print(f'  {name}: {size / 2**20:.2f} MiB')
  total = folder_bytes(DATA) + folder_bytes(WHEELHOUSE)
  print(f'bundle: {total / 2**20:.1f} MiB (cap {MAX_BUNDLE_BYTES / 2**20:.0f} MiB)')
  if total > MAX_BUNDLE_BYTES:
    print(f'error: the bundle is {total / 2**20:.1f} MiB, over the 64 MiB a device call carries',
          file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
