r"""CIFAR-100, ResNet-18 (3x3 stem), DDGSD (paper Table 1, "Base" column).

DDGSD defaults (docs/methods.md): two independently augmented views of each image in one
BatchNorm batch of 2B; CE on both views summed; symmetric KL between the views at T = 3 (each
direction's target detached), weight 1; plus 0.005 x the squared distance between the views'
batch-mean features (not multiplied by T^2).

Command:
  python train.py --config configs/cifar100_resnet18_ddgsd.py --workdir /tmp/c100_r18_ddgsd
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 76.8 (Table 1, CIFAR-100, mean of 3 seeds; CE: 74.8).
Hardware: one modern GPU (A100/H100 class); each step forwards 2B = 256 images, so expect about
twice the time of CE per step
(benchmarks/step_speed.py); not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.ddgsd = dict(common.DDGSD)
  return common.apply_arg(config, arg)
