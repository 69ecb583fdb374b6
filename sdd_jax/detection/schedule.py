"""The fine-tuning schedules (1x, 0.5x) and their learning rate, as pure functions of the
iteration (no torch).

The recipe is torchvision's references/detection one with the detectron2 "1x" length: SGD at
lr 0.02 for a global batch of 16 images, scaled linearly with the global batch (the linear
scaling rule), momentum 0.9, weight decay 1e-4; a linear warm-up over the first
`min(1000, iterations_per_epoch - 1)` iterations from 1/1000 of the lr (torchvision's
`LinearLR(start_factor=1/1000)` in epoch 0); then x0.1 at each drop epoch.

- `1x`: 12 epochs, x0.1 after epochs 8 and 11 (torchvision's `--lr-steps 8 11`).
- `0.5x`: 7 epochs, x0.1 after epochs 5 and 6: 1x's drops at 8/12 and 11/12 of training,
  scaled to 7 epochs (4.7 and 6.4) and rounded to whole epochs.
"""
import dataclasses
from typing import Tuple

BASE_LR = 0.02
BASE_BATCH = 16
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
WARMUP_ITERATIONS = 1000
WARMUP_FACTOR = 1e-3
DROP = 0.1


@dataclasses.dataclass(frozen=True)
class Schedule:
  """`epochs` of training; the lr is multiplied by `DROP` after each epoch in `drop_after`."""
  epochs: int
  drop_after: Tuple[int, ...]


SCHEDULES = {'1x': Schedule(epochs=12, drop_after=(8, 11)),
             '0.5x': Schedule(epochs=7, drop_after=(5, 6))}


def linear_scaled_lr(global_batch: int) -> float:
  """lr 0.02 at 16 images per step, proportional to the global batch."""
  return BASE_LR * global_batch / BASE_BATCH


def warmup_iterations(iterations_per_epoch: int) -> int:
  """torchvision's reference: `min(1000, len(data_loader) - 1)`, within the first epoch."""
  return max(0, min(WARMUP_ITERATIONS, iterations_per_epoch - 1))


def lr_factor(iteration: int, iterations_per_epoch: int, schedule: Schedule) -> float:
  """The lr multiplier for the update that follows `iteration` updates (0-based).

  Args:
    iteration: updates done so far (0 for the first update).
    iterations_per_epoch: updates per epoch (training images // global batch).
    schedule: the epochs and drop epochs.

  Returns:
    warm-up factor (linear from `WARMUP_FACTOR` to 1) times `DROP ** drops passed`.
  """
  warmup = warmup_iterations(iterations_per_epoch)
  factor = 1.0
  if iteration < warmup:
    factor = WARMUP_FACTOR + (1 - WARMUP_FACTOR) * iteration / warmup
  epoch = iteration // iterations_per_epoch
  return factor * DROP ** sum(epoch >= e for e in schedule.drop_after)
