"""CIFAR-C corruption accuracy (docs/evaluation.md §4): the corruption lists and the mean
corruption accuracy over them (host-side NumPy)."""
from typing import Mapping, Sequence

import numpy as np

# §4: the 15 CIFAR-C benchmark corruptions (augmix `test_c`) and the 4 extra ("validation")
# ones. mCA-15 averages the first list; mCA-19 (the SD-Dropout authors' script) averages both.
BENCHMARK_CORRUPTIONS = (
    'gaussian_noise', 'shot_noise', 'impulse_noise',
    'defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur',
    'snow', 'frost', 'fog', 'brightness',
    'contrast', 'elastic_transform', 'pixelate', 'jpeg_compression')
EXTRA_CORRUPTIONS = ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate')
ALL_CORRUPTIONS = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
NUM_SEVERITIES = 5


def corruption_summary(acc: Mapping[str, Sequence[float]]) -> dict:
  """Mean corruption accuracy over CIFAR-C corruptions (§4).

  Args:
    acc: corruption name -> 5 top-1 accuracies, severities 1..5 in order (equal-sized blocks).
  Returns:
    dict with `mca15` (mean over the `BENCHMARK_CORRUPTIONS` present, nan if none), `mca19`
    (mean over every corruption present), `num_benchmark` and `num_all` (how many were
    averaged), `per_corruption` (name -> mean over severities), `per_severity` (`[5]`, mean
    over the benchmark corruptions present; its mean is mca15) and `per_severity_all` (`[5]`,
    over all present).
  """
  unknown = sorted(set(acc) - set(ALL_CORRUPTIONS))
  if unknown:
    raise ValueError(f'unknown corruption(s) {unknown}; known: {", ".join(ALL_CORRUPTIONS)}')
  table = {}
  for name in ALL_CORRUPTIONS:
    if name in acc:
      row = np.asarray(acc[name], np.float64)
      if row.shape != (NUM_SEVERITIES,):
        raise ValueError(f'corruption {name!r}: need {NUM_SEVERITIES} accuracies (severities '
                         f'1..5), got shape {row.shape}')
      table[name] = row
  benchmark = [table[name] for name in BENCHMARK_CORRUPTIONS if name in table]
  every = list(table.values())
  nan_row = np.full(NUM_SEVERITIES, np.nan)
  per_severity = np.mean(benchmark, axis=0) if benchmark else nan_row
  per_severity_all = np.mean(every, axis=0) if every else nan_row
  return {
      'mca15': float(np.mean(per_severity)),
      'mca19': float(np.mean(per_severity_all)),
      'num_benchmark': len(benchmark),
      'num_all': len(every),
      'per_corruption': {name: float(row.mean()) for name, row in table.items()},
      'per_severity': [float(v) for v in per_severity],
      'per_severity_all': [float(v) for v in per_severity_all],
  }
