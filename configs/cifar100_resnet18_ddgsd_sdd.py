r"""CIFAR-100, ResNet-18 (3x3 stem), DDGSD + SD-Dropout (paper Table 1, "+SD-Dropout" column).

DDGSD defaults (docs/methods.md): two independently augmented views of each image in one
BatchNorm batch of 2B; CE on both views summed; symmetric KL between the views at T = 3 (each
direction's target detached), weight 1; plus 0.005 x the squared distance between the views'
batch-mean features (not multiplied by T^2).
SD-Dropout combined: rate 0.5, T = 3, weight 0.1 (docs/methods.md: the authors' setting when
combined with another method).

Command:
  python train.py --config configs/cifar100_resnet18_ddgsd_sdd.py --workdir /tmp/c100_r18_ddgsd_sdd
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 77.1 (Table 1, CIFAR-100, mean of 3 seeds;
DDGSD alone: 76.8).
Hardware: one modern GPU (A100/H100 class); each step forwards 2B = 256 images, so expect about
twice the time of CE per step
(benchmarks/step_speed.py); not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.ddgsd = dict(common.DDGSD)
  config.methods.sd_dropout = dict(common.SD_DROPOUT_COMBINED)
  return common.apply_arg(config, arg)
