r"""Offline demo: SD-Dropout on scikit-learn's real 8x8 digits (1,437 train / 360 test images).

This is the default job of README's first command; it needs no download and finishes in about
a minute on a 2-core CPU, printing the final top-1, NLL and ECE.

Commands:
  python train.py --config configs/demo.py --workdir /tmp/sdd_demo        # + SD-Dropout
  python train.py --config configs/demo.py:ce --workdir /tmp/sdd_demo_ce  # cross-entropy baseline

A narrow ResNet-18 (width 16, 3x3 stem) sees 8x8 crops with 1-pixel padding, no flips (digits are
not mirror-symmetric), 15 epochs of SGD. Expected test top-1 is in the high 90s for both; the
demo shows the machinery, not the paper's gap.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.data = common.data_config(
      'digits', source='digits', image_size=8, crop_padding=1, flip=False,
      mean=(0.5,), std=(0.5,), num_classes=10)
  config.model.kwargs = dict(width=16)
  config.batch_size = 64
  config.eval_batch_size = 360
  config.num_epochs = 15
  config.optim.lr = 0.05
  config.optim.lr_boundaries = (10,)
  config.optim.weight_decay = 5e-4
  config.checkpoint_every_epochs = 5
  config.log_every_steps = 20
  _, flags = common.parse_arg(arg)
  if 'ce' not in flags:
    config.methods.sd_dropout = dict(common.SD_DROPOUT)
  return common.apply_arg(config, arg, known_flags=('ce',))
