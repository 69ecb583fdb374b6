"""The flags of `python -m sdd_jax.detection.finetune`, each checked as it is parsed.

Every number has an argparse type that refuses what cannot make a run (a batch of 0, a
negative worker count, a NaN threshold, ...): argparse prints the usage and one
`error: argument --flag: ...` line and exits 2, before any file is read or written.
"""
import argparse
import math
from typing import Callable, Optional, Sequence

from sdd_jax.detection import schedule as schedule_lib

SEED_MAX = 2**32 - 1  # NumPy's and torch's seeds (the flip coin, torch.manual_seed) take it


def whole(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
  """An argparse type: a whole number in [minimum, maximum]."""
  bound = f'>= {minimum}' if maximum is None else f'in [{minimum}, {maximum}]'

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
      raise argparse.ArgumentTypeError(f'{text!r}: give a whole number {bound}')
    return value
  parse.bounds = (minimum, maximum)  # read by the bad-input catalogue
  return parse


def fraction(text: str) -> float:
  """An argparse type: a number in [0, 1]."""
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not 0 <= value <= 1:
    raise argparse.ArgumentTypeError(f'{text!r}: give a number in [0, 1]')
  return value


def learning_rate(text: str):
  """--lr: 'auto' or a finite number > 0."""
  if text == 'auto':
    return text
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not (value > 0 and math.isfinite(value)):
    raise argparse.ArgumentTypeError(f"{text!r}: give 'auto' or a finite number > 0")
  return value


def path(text: str) -> str:
  """An argparse type: a non-empty path (an empty one would be the current folder)."""
  if not text.strip():
    raise argparse.ArgumentTypeError(f'{text!r}: give a path')
  return text


def make_parser(description: str, default_device: str) -> argparse.ArgumentParser:
  """The entry point's parser (`description`: its docstring's first paragraph)."""
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.detection.finetune',
                                   description=description)
  parser.add_argument('--backbone', required=True, type=path, help='a ResNet .safetensors file '
                      'written by python -m sdd_jax.export')
  parser.add_argument('--coco_root', required=True, type=path, help='holds train2017/, '
                      'val2017/, annotations/')
  parser.add_argument('--schedule', required=True, choices=sorted(schedule_lib.SCHEDULES))
  parser.add_argument('--workdir', required=True, type=path, help='a local folder')
  parser.add_argument('--batch_size', type=whole(1), default=16,
                      help='global batch (all GPUs)')
  parser.add_argument('--lr', default='auto', type=learning_rate,
                      help="'auto' = 0.02 x batch_size / 16, or a number")
  parser.add_argument('--workers', type=whole(0), default=4,
                      help='data loader processes per GPU')
  parser.add_argument('--device', default=default_device, choices=('cpu', 'cuda'))
  parser.add_argument('--max_iters', type=whole(0), default=0, help='end training after this '
                      'many iterations in all (0: the schedule\'s)')
  parser.add_argument('--train_images', type=whole(0), default=0,
                      help='train on the first N images (0: all)')
  parser.add_argument('--min_size', type=whole(1), default=800)
  parser.add_argument('--max_size', type=whole(1), default=1333)
  parser.add_argument('--box_score_thresh', type=fraction, default=0.05,
                      help='evaluation drops detections scoring below it (torchvision\'s 0.05)')
  parser.add_argument('--seed', type=whole(0, SEED_MAX), default=0)
  return parser


def parse_args(argv: Optional[Sequence[str]], description: str,
               default_device: str) -> argparse.Namespace:
  return make_parser(description, default_device).parse_args(argv)
