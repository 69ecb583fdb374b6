r"""Sensitivity of SD-Dropout to the pooled dimension D and the weight, on real CIFAR-10 (issue 12).

ResNet-18 (3x3 stem) at width w has pooled features of dimension D = 8w (w = 8, 16, 32, 64 gives
D = 64, 128, 256, 512; the paper's network is w = 64). SD-Dropout at the paper's T = 3, rate 0.5,
both KL directions, masks on the pooled features, at weight 0.1, 0.25, 0.5 or 1 (the paper's
default), against plain cross-entropy (`ce`).

Data: the npz source, `config.data.path` = the offline CIFAR-10 copy `../shared/data/cifar10`
(50,000 / 10,000 images; README there). Point it elsewhere with the token `data=DIR` (or
`--config.data.path=DIR`): any folder holding `train.npz` and `test.npz`. The study trains on a
class-balanced subset of 5,000 training and 5,000 test images (500 per class each), written by
  python benchmarks/cifar10_subset.py --out runs/cifar10_5k --train_per_class 500 \
      --test_per_class 500

Recipe: the paper's (SGD 0.1, momentum 0.9, coupled weight decay 1e-4, batch 128, CIFAR crop +
flip), shortened to NUM_EPOCHS epochs with x0.1 at 50% and 75%; accuracy and calibration run
once, at the end (saves the per-epoch test passes on a CPU).

Tokens (comma-separated after the colon): `width=W` (8, 16, 32 or 64; default 16), `ce` (no
SD-Dropout), `weight=L` (SD-Dropout's weight; default 1), `data=DIR`, plus the shared `seed=N`
and `smoke`.

One run:
  python train.py --config configs/cifar10_sensitivity.py:data=runs/cifar10_5k,width=16,weight=0.25 \
      --workdir runs/sens/one
The study (per seed, CE then the SD-Dropout weights; seed slowest so that an interrupted study
still has whole seeds):
  for seed in 0 1 2; do
    python -m sdd_jax.sweep --config configs/cifar10_sensitivity.py:data=runs/cifar10_5k,ce \
        --workdir_root runs/sens/ce --sweep "seed=$seed" --sweep "model.kwargs.width=8"
    python -m sdd_jax.sweep --config configs/cifar10_sensitivity.py:data=runs/cifar10_5k \
        --workdir_root runs/sens/sdd --sweep "seed=$seed" --sweep "model.kwargs.width=8" \
        --sweep "methods.sd_dropout.weight=0.1,0.25,0.5,1.0"
  done
  python -m sdd_jax.report runs/sens --out runs/sens/tables.md   # + sensitivity.png next to it

Hardware (measured): a 2-core CPU shared with other jobs, runs under `nice -n 10`: width 8
runs took 127-260 s each (`wall_seconds`, 2,803 s for the 15), at 180-363 images/s; width 16
trained at 70 images/s and width 32 at 29 images/s in 2-epoch timing runs (about 10 and 23
minutes per run), so the study has width 8 only (3 seeds), plus width 16 at seed 0 for CE,
weight 0.25 and 1 where time allowed. Width 64 (D = 512) is for an accelerator.
Result (width 8, D = 64; mean ± std over seeds 0-2; docs/sensitivity.md has the tables):
CE top-1 43.55 ± 0.49, ECE 2.13 ± 1.11; weight 0.1: 42.33 ± 0.37, 2.57 ± 0.55; 0.25:
39.69 ± 1.13, 4.06 ± 0.11; 0.5: 37.93 ± 1.03, 6.62 ± 0.37; 1: 33.62 ± 1.30, 8.35 ± 0.92 (mean
confidence falls from 45.15 to 25.27: under-confident). In this under-fitted regime every
weight costs accuracy and calibration, the more the larger the weight. After temperature
scaling (a re-run of the 15 runs, evaluated with `evaluate.py --evals=calibration,temperature`;
docs/sensitivity.md): T* < 1 for every weight (0.94 at 0.1 to 0.66 at 1: under-confidence),
ECE after TS 1.62 ± 0.57 for CE + TS against 1.53-3.40 for the weights: none beats CE + TS.
"""
import os

from configs import common

SHARED_CIFAR10 = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data', 'cifar10'))
WIDTHS = (8, 16, 32, 64)
NUM_EPOCHS = 8
OWN_KEYS = ('width', 'weight', 'data')


def get_config(arg=None):
  values, flags = common.parse_arg(arg)
  config = common.recipe()
  config.data = common.data_config('cifar10', source='npz',
                                   path=values.get('data', SHARED_CIFAR10), num_classes=10)
  width = int(values.get('width', 16))
  if width not in WIDTHS:
    raise ValueError(f'unknown width={width}; known: {", ".join(map(str, WIDTHS))} '
                     f'(pooled dimension D = 8 * width)')
  config.model.kwargs = dict(width=width)
  config.num_epochs = NUM_EPOCHS
  config.optim.lr_boundaries = (NUM_EPOCHS // 2, NUM_EPOCHS * 3 // 4)
  config.evals.accuracy.every_epochs = 0
  config.checkpoint_every_epochs = 5
  if 'ce' in flags and 'weight' in values:
    raise ValueError('weight sets SD-Dropout, which `ce` leaves out; drop one')
  if 'ce' not in flags:
    config.methods.sd_dropout = dict(common.SD_DROPOUT, weight=float(values.get('weight', 1.0)))
  rest = ','.join([*(f'{k}={v}' for k, v in values.items() if k not in OWN_KEYS), *flags])
  return common.apply_arg(config, rest, known_flags=('ce',))
