r"""CIFAR-100, ResNet-18 (3x3 stem), DML + SD-Dropout (paper Table 1, "+SD-Dropout" column).

DML defaults (docs/methods.md): two ResNet-18s in one train state, one optimizer step; CE
averaged over the two; KL(p^T(peer) || p^T(self)) for each, peer detached, T = 3, weight 1.
Reported: network 0 as test/..., network 1 as dml/net1/..., their averaged-probability
ensemble as dml/ensemble/....
SD-Dropout combined: rate 0.5, T = 3, weight 0.1 (docs/methods.md: the authors' setting when
combined with another method).

Command:
  python train.py --config configs/cifar100_resnet18_dml_sdd.py --workdir /tmp/c100_r18_dml_sdd
  (add `:seed=1` etc. for other seeds; `:smoke` for a tiny offline run)

Expected final-epoch top-1: paper 78.8 (Table 1, CIFAR-100, mean of 3 seeds;
DML alone: 78.9).
Hardware: one modern GPU (A100/H100 class); two networks per step: about twice the time of CE
(benchmarks/step_speed.py); not measured here end to end.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.methods.dml = dict(common.DML)
  config.methods.sd_dropout = dict(common.SD_DROPOUT_COMBINED)
  return common.apply_arg(config, arg)
