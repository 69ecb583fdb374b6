r"""CIFAR-100, ResNet-18 (3x3 stem), PS-KD (not in paper Table 1).

PS-KD defaults (docs/methods.md): targets (1 - alpha_t) onehot + alpha_t * (the example's softmax
from the previous epoch), alpha_t = 0.8 (epoch + 1) / 200, one-hot in the first epoch; the
soft-target CE replaces the CE. The 50,000 x 100 prediction table lives in the train state,
sharded by rows over the devices, and is checkpointed.

Command:
  python train.py --config configs/cifar100_resnet18_ps_kd.py --workdir /tmp/c100_r18_ps_kd
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: no published number for this recipe: PS-KD is not in the
SD-Dropout paper's Table 1. The official PS-KD code reports CE 75.82 -> PS-KD 79.18 with a
PreAct ResNet-18 (300 epochs, Nesterov, weight decay 5e-4), a different recipe.
Hardware: one modern GPU (A100/H100 class); one forward per step as CE, plus a table lookup and
write (benchmarks/step_speed.py); not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.ps_kd = dict(common.PS_KD)
  return common.apply_arg(config, arg)
