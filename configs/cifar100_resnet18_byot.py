r"""CIFAR-100, ResNet-18 (3x3 stem), BYOT (paper Table 1, "Base" column).

BYOT defaults (docs/methods.md): auxiliary classifiers after stages 1-3 (training only; the
evaluated network is the plain ResNet-18); weight 1 x [0.9 sum CE(aux) + 0.1 T^2 sum
KL(final || aux) + 1e-6 sum ||f_aux - f_final||^2], T = 3, final logits and features detached.

Command:
  python train.py --config configs/cifar100_resnet18_byot.py --workdir /tmp/c100_r18_byot
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 77.2 (Table 1, CIFAR-100, mean of 3 seeds; CE: 74.8).
Hardware: one modern GPU (A100/H100 class); the auxiliary heads add some convolutions to every
step (benchmarks/step_speed.py); not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.byot = dict(common.BYOT)
  return common.apply_arg(config, arg)
