r"""CIFAR-100, ResNet-18 (3x3 stem), cross-entropy only: the baseline of paper Table 1.

Command:
  python train.py --config configs/cifar100_resnet18_ce.py --workdir /tmp/c100_r18_ce
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 74.8; the SD-Dropout authors' 5-seed logs 74.76 +- 0.29.
Hardware: one modern GPU (A100/H100 class), about 1 h for 200 epochs x 390 steps (an estimate
from the step benchmark, not a measured full run); a 2-core CPU is far too slow.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  return common.apply_arg(config, arg)
