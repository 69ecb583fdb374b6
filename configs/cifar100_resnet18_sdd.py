r"""CIFAR-100, ResNet-18 (3x3 stem), cross-entropy + SD-Dropout (paper Table 1, "+ SD-Dropout").

SD-Dropout stand-alone defaults (docs/methods.md, paper Table 14): rate 0.5, T = 3, weight 1,
symmetric KL with gradients through both sides, masks on the pooled features.

Command:
  python train.py --config configs/cifar100_resnet18_sdd.py --workdir /tmp/c100_r18_sdd
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 77.0; the SD-Dropout authors' 5-seed logs 76.82 +- 0.30.
Hardware: one modern GPU (A100/H100 class), about 1 h for 200 epochs (the two extra head passes
cost little: see benchmarks/step_speed.py); not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.sd_dropout = dict(common.SD_DROPOUT)
  if 'pod' in common.parse_arg(arg)[1]:
    common.cifar_pod(config)
  return common.apply_arg(config, arg, known_flags=('pod',))
