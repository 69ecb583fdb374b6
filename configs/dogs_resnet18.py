r"""Stanford Dogs, ImageNet-style ResNet-18 from scratch: paper Table 1, Stanford Dogs column.

Same recipe and tokens as configs/cub200_resnet18.py (224 px random-resized crops + flip, eval
256 -> 224, ImageNet mean/std, batch 32, SGD 0.1, 200 epochs, x0.1 at 100 and 150; CS-KD
weight 3), on tfds `stanford_dogs` (12,000 train / 8,580 test images, 120 classes).
Tokens: `method=ce|cs_kd|ddgsd|byot|dml|label_smoothing|ps_kd`, flag `sdd`, `seed=N`, `smoke`.

Commands (paper Table 1, final epoch, mean of 3 seeds; Base -> +SD-Dropout):
  python train.py --config configs/dogs_resnet18.py --workdir /tmp/dogs_ce              # 63.8
  python train.py --config configs/dogs_resnet18.py:sdd --workdir /tmp/dogs_sdd         # 69.9
  python train.py --config configs/dogs_resnet18.py:method=cs_kd --workdir /tmp/dogs_cs_kd
      # CS-KD 68.8 -> 69.3 with `:method=cs_kd,sdd`
  python train.py --config configs/dogs_resnet18.py:method=ddgsd --workdir /tmp/dogs_ddgsd
      # DDGSD 66.9 -> 68.1 with `:method=ddgsd,sdd`
  python train.py --config configs/dogs_resnet18.py:method=byot --workdir /tmp/dogs_byot
      # BYOT 68.7 -> 71.2 with `:method=byot,sdd`
  python train.py --config configs/dogs_resnet18.py:method=dml --workdir /tmp/dogs_dml
      # DML 70.5 -> 72.0 with `:method=dml,sdd`
  python train.py --config configs/dogs_resnet18.py:method=label_smoothing --workdir /tmp/dogs_ls
      # LS 65.2 -> 70.1 with `:method=label_smoothing,sdd`
  python train.py --config configs/dogs_resnet18.py:method=ps_kd --workdir /tmp/dogs_ps_kd
      # PS-KD: not in the paper's Table 1 (no published number)
(Tables 9 and 11 quote a different Stanford Dogs CE baseline, 64.1, and SD-Dropout 69.8.)

Hardware (estimate, not measured): 375 steps of 32 per epoch, 75,000 steps; about 2-3 h on one
A100/H100 for CE, roughly 2x for CS-KD / DDGSD / DML.
"""
from configs import cub200_resnet18


def get_config(arg=None):
  return cub200_resnet18.fine_grained_config('stanford_dogs', 120, arg)
