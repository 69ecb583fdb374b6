r"""CIFAR-100, ResNet-18 (3x3 stem), CS-KD + SD-Dropout (paper Table 1, "+SD-Dropout" column).

CS-KD defaults (docs/methods.md): every anchor gets a partner of its class drawn uniformly by
the input pipeline; term KL(p^T(partner) || p^T(anchor)) at T = 4, weight 1, partner detached;
cross-entropy on the anchors only; anchors and partners go through BatchNorm as one batch of 2B.
SD-Dropout combined: rate 0.5, T = 3, weight 0.1 (docs/methods.md: the authors' setting when
combined with another method).

Command:
  python train.py --config configs/cifar100_resnet18_cs_kd_sdd.py --workdir /tmp/c100_r18_cs_kd_sdd
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 77.4 (Table 1, CIFAR-100, mean of 3 seeds;
CS-KD alone: 77.3).
Hardware: one modern GPU (A100/H100 class); each step forwards 2B = 256 images, so expect about
twice the time of CE per step
(benchmarks/step_speed.py); not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.cs_kd = dict(common.CS_KD)
  config.methods.sd_dropout = dict(common.SD_DROPOUT_COMBINED)
  return common.apply_arg(config, arg)
