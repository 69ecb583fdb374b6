r"""Writes a class-balanced subset of an npz data set: `<out>/train.npz`, `<out>/test.npz`.

  python benchmarks/cifar10_subset.py --out runs/cifar10_subset --train_per_class 500 \
      [--test_per_class 0] [--src ../shared/data/cifar10] [--seed 0]

The npz source (`config.data.source='npz'`) reads every example of `<path>/<split>.npz` and has
no subset option; this script makes the subset a file instead. From each class it keeps
`--train_per_class` training and `--test_per_class` test examples (0: all of them), drawn
uniformly without replacement by `numpy.random.default_rng(seed)`, in their original order;
`x`, `y` and `label_names` keep their dtypes. Point a config at the result with
`--config.data.path=<out>` (configs/cifar10_sensitivity.py: the token `data=<out>`).
"""
import argparse
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CIFAR10 = os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data', 'cifar10'))


def subset_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """Sorted indices: `per_class` of each class (all where per_class is 0); a class with fewer
  examples than asked is an error."""
  labels = np.asarray(labels)
  if per_class <= 0:
    return np.arange(len(labels))
  rng = np.random.default_rng(seed)
  picked = []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    if len(members) < per_class:
      raise SystemExit(f'error: class {c} has {len(members)} examples, fewer than '
                       f'--*_per_class={per_class}; ask for fewer')
    picked.append(rng.choice(members, per_class, replace=False))
  return np.sort(np.concatenate(picked))


def write_subset(src: str, out: str, split: str, per_class: int, seed: int) -> int:
  with np.load(os.path.join(src, f'{split}.npz'), allow_pickle=False) as arrays:
    data = {k: arrays[k] for k in arrays.files}
  keep = subset_indices(data['y'], per_class, seed)
  data['x'], data['y'] = data['x'][keep], data['y'][keep]
  np.savez(os.path.join(out, f'{split}.npz'), **data)
  return len(keep)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--src', default=SHARED_CIFAR10, help='folder with train.npz, test.npz')
  parser.add_argument('--out', required=True, help='folder to write train.npz, test.npz into')
  parser.add_argument('--train_per_class', type=int, required=True)
  parser.add_argument('--test_per_class', type=int, default=0, help='0: the whole test split')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  for split, per_class in (('train', args.train_per_class), ('test', args.test_per_class)):
    n = write_subset(args.src, args.out, split, per_class, args.seed)
    print(f'{os.path.join(args.out, split + ".npz")}: {n} examples')


if __name__ == '__main__':
  main()
