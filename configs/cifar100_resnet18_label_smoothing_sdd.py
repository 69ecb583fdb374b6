r"""CIFAR-100, ResNet-18 (3x3 stem), label smoothing + SD-Dropout (paper Table 1, "LS" row,
"+SD-Dropout" column).

Label smoothing (docs/methods.md): targets (1 - 0.1) onehot + 0.1 / 100 replace the one-hot
labels of the cross-entropy.
SD-Dropout combined: rate 0.5, T = 3, weight 0.1 (docs/methods.md: the authors' setting when
combined with another method).

Command:
  python train.py --config configs/cifar100_resnet18_label_smoothing_sdd.py --workdir /tmp/c100_r18_label_smoothing_sdd
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 76.9 (Table 1, CIFAR-100, mean of 3 seeds;
label smoothing alone: 76.8).
Hardware: one modern GPU (A100/H100 class); the cost of a CE step; not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.label_smoothing = dict(common.LABEL_SMOOTHING)
  config.methods.sd_dropout = dict(common.SD_DROPOUT_COMBINED)
  return common.apply_arg(config, arg)
