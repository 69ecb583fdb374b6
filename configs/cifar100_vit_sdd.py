r"""CIFAR-100, ViT-Tiny (4x4 patches, 12 blocks, D=192, 3 heads; stochastic depth 0.1) with
SD-Dropout at its stand-alone defaults (rate 0.5, T = 3, weight 1, both KL directions), the masks
on the features: the class token after the final LayerNorm.

Command:
  python train.py --config configs/cifar100_vit_sdd.py --workdir /tmp/c100_vit_sdd
  (`:ce` for the cross-entropy baseline, `:seed=N`, `:smoke` for a tiny offline run;
  `--config.model.name=vit_small_cifar` for ViT-Small; `--config.model.dtype=bfloat16` on GPUs)

Optimizer: AdamW, lr 1e-3 at batch 128, weight decay 0.05 on the kernels only, 10 warm-up
epochs then cosine to 0 over 200 epochs. Why not the paper's SGD: ViTs trained from scratch are
markedly less stable and less accurate with SGD than with AdamW (Xiao et al. 2021, "Early
Convolutions Help Transformers See Better"); DeiT (Touvron et al. 2021) trains them with AdamW,
weight decay 0.05, linear warm-up and cosine decay, and so do the from-scratch CIFAR ViT recipes.
lr 1e-3 is above DeiT's linear rule (5e-4 x batch / 512 = 1.25e-4 here), as is usual for small
images and short runs; the warm-up keeps the early updates small while Adam's second-moment
estimates are still noisy. A guess to tune, not a tuned value.

The model has no BatchNorm; its dropout and stochastic depth draw from the `'dropout'` key the
train step derives from the step key (docs/method_contract.md), so a resumed run draws as the
straight one. `:smoke` uses the registry's tiny variant (dropout and drop path 0); the tests
train the tiny ViT with both on, with every method that applies (tests/methods/contract_test.py).
BYOT is refused with this model (its auxiliary heads are convolutions on feature maps; the ViT's
stages are token sequences).

Expected top-1: not measured. With this repository's augmentation (pad-crop and flip only, no
RandAugment / mixup / CutMix) a ViT-Tiny from scratch stays well below ResNet-18's 77%; the
small-data recipes above reach the 70s only with the heavy augmentation.
Hardware: one modern GPU. A training step of ViT-Tiny on 32x32 (65 tokens) at batch 128 is
288 GFLOPs by XLA's cost analysis (forward + backward), against 372 for ResNet-18
(`resnet18_cifar`), so the arithmetic is about 0.8x ResNet-18's; the wall time on an
accelerator is not measured.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.model.name = 'vit_tiny_cifar'  # drop_path 0.1 (registered default), dropout 0
  config.optim.name = 'adamw'
  config.optim.schedule = 'cosine'
  config.optim.lr = 1e-3
  config.optim.weight_decay = 0.05
  config.optim.warmup_epochs = 10
  config.optim.lr_boundaries = ()  # the cosine schedule has none
  _, flags = common.parse_arg(arg)
  if 'ce' not in flags:
    config.methods.sd_dropout = dict(common.SD_DROPOUT)
  return common.apply_arg(config, arg, known_flags=('ce',))
