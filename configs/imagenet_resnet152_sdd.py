r"""ImageNet, ResNet-152, cross-entropy + SD-Dropout: paper Table 3 (and its CE baseline).

Recipe (paper §4.1.2): torchvision-style ResNet-152 from scratch, 90 epochs, batch 32, SGD
lr 0.1 (the §4.1.1 recipe), momentum 0.9, wd 1e-4, lr x0.1 at epochs 30 and 60; 224x224
random-resized crops + flip, evaluation resize 256 -> centre crop 224, ImageNet mean/std;
SD-Dropout weight (lambda) 0.1, rate 0.5, T = 3 on the pooled features.

Data: tfds `imagenet2012` (train / validation). It needs a manual download: put
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in `--config.data.manual_dir=DIR` (default
<data_dir>/downloads/manual) and run `tfds build imagenet2012 --file_format=array_record
--manual_dir=DIR` once.

Tokens: flag `ce` (the cross-entropy baseline), flag `pod` (the pod variant below), plus the
shared `seed=N`, `smoke`.

Commands (paper Table 3, top-1 / top-5 on the 50,000 validation images, final epoch):
  python train.py --config configs/imagenet_resnet152_sdd.py --workdir /tmp/in_r152_sdd
      # SD-Dropout 75.5 / 92.7
  python train.py --config configs/imagenet_resnet152_sdd.py:ce --workdir /tmp/in_r152_ce
      # Cross-entropy 74.8 / 92.5
  python train.py --config configs/imagenet_resnet152_sdd.py:pod --workdir gs://BUCKET/in_r152_sdd
  python train.py --config configs/imagenet_resnet152_sdd.py:pod,ce --workdir gs://BUCKET/in_r152_ce

Pod variant (`pod`; ours, not the paper's): global batch 1024, lr by the linear scaling rule of
Goyal et al. 2017 from the standard ImageNet reference (0.1 per 256 images): 0.1 x 1024 / 256 =
0.4, with a 5-epoch linear warm-up; bfloat16 compute (parameters and BatchNorm statistics stay
float32); otherwise the same 90-epoch schedule. We do not scale linearly from the paper's own
batch 32 (that rule would give lr 3.2, outside what plain SGD on ResNets tolerates); so the pod
run is the standard large-batch ImageNet recipe, and its numbers are expected near, not equal
to, the paper's 74.8 / 75.5 top-1 (unmeasured).

Hardware (estimates, not measured): paper recipe 40,037 steps of 32 per epoch, 3.6 M steps;
about 2.5-3.5 days on one A100/H100 (small batches leave the GPU under-used). Pod variant:
1,251 steps per epoch, 112,600 steps; about 3-4 h on a TPU v4-32 or 8x H100, with the input
pipeline (JPEG decoding, 2 host CPUs per accelerator at least) the likely bottleneck.
"""
from configs import common


def get_config(arg=None):
  config = common.recipe()
  config.model.name = 'resnet152'
  config.data = common.data_config(
      'imagenet2012', eval_split='validation', augment='imagenet', image_size=224,
      eval_resize=256, mean=common.IMAGENET_MEAN, std=common.IMAGENET_STD, num_classes=1000)
  config.batch_size = 32
  config.eval_batch_size = 500
  config.num_epochs = 90
  config.optim.lr_boundaries = (30, 60)
  config.checkpoint_every_epochs = 1
  config.log_every_steps = 500
  _, flags = common.parse_arg(arg)
  if 'ce' not in flags:
    config.methods.sd_dropout = dict(common.SD_DROPOUT_COMBINED)  # lambda 0.1 (paper §4.1.2)
  if 'pod' in flags:
    config.batch_size = 1024
    config.eval_batch_size = 1000
    config.optim.lr = 0.1 * config.batch_size / 256
    config.optim.warmup_epochs = 5
    config.model.dtype = 'bfloat16'
    config.log_every_steps = 100
  return common.apply_arg(config, arg, known_flags=('ce', 'pod'))
