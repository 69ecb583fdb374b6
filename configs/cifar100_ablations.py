r"""SD-Dropout ablations on CIFAR-100 (paper Tables 9, 10, 12, 13, 14), one token per axis.

Base: the paper recipe (configs/common.py: ResNet-18 with 3x3 stem, SGD 0.1, 200 epochs, x0.1 at
100 and 150, batch 128) + SD-Dropout alone (rate 0.5, T = 3, weight 1, both KL directions, masks
on the pooled features). Tokens (comma-separated after the colon, combinable):
  direction=both|forward|reverse   Table 9: which KL direction(s) get gradients
  data=cifar100|cub200|dogs        Table 9's other rows: the fine-grained recipe of
                                   configs/cub200_resnet18.py (ImageNet-style resnet18, 224 px)
  model=resnet34_cifar|densenet121_cifar   Table 10: the backbone (any registered model name)
  ce                               no SD-Dropout: the cross-entropy baseline of that backbone/head
  position=1|2|3|4                 Table 12: masks after ResNet stage k (4 = pooled features)
  head=2fc                         Table 13: Dense(512) -> ReLU -> Dense(classes) head
  rate=R, weight=W                 Table 14: dropout rate beta and lambda_SDD
plus the shared `seed=N`, `smoke`.

Table 9 (final-epoch top-1, mean of 3 seeds; Base / Forward / Reverse / Both):
  CIFAR-100 74.8 / 76.6 / 76.3 / 77.0;  CUB-200-2011 53.8 / 65.4 / 63.8 / 66.6;
  Stanford Dogs 64.1 / 69.6 / 69.7 / 69.8.
  python train.py --config configs/cifar100_ablations.py:direction=forward --workdir /tmp/abl_fwd
  python train.py --config configs/cifar100_ablations.py:direction=reverse --workdir /tmp/abl_rev
  python train.py --config configs/cifar100_ablations.py:data=cub200,direction=forward \
      --workdir /tmp/abl_cub_fwd           (Base/Both: configs/cub200_resnet18.py[:sdd])
Table 10 (Base -> +SD-Dropout): ResNet-18 74.8 -> 77.0; ResNet-34 75.7 -> 77.2;
  DenseNet-121 77.3 -> 78.4.
  python train.py --config configs/cifar100_ablations.py --workdir /tmp/abl_r18_sdd
  python train.py --config configs/cifar100_ablations.py:model=resnet34_cifar,ce --workdir /tmp/abl_r34_ce
  python train.py --config configs/cifar100_ablations.py:model=resnet34_cifar --workdir /tmp/abl_r34_sdd
  python train.py --config configs/cifar100_ablations.py:model=densenet121_cifar,ce --workdir /tmp/abl_d121_ce
  python train.py --config configs/cifar100_ablations.py:model=densenet121_cifar --workdir /tmp/abl_d121_sdd
Table 12 (CE 74.8; after layer1 74.8, layer2 75.1, layer3 75.7; pooled features (4) 77.0):
  python train.py --config configs/cifar100_ablations.py:position=1 --workdir /tmp/abl_pos1
  (and position=2, position=3)
Table 13 (ResNet-18 with two FC layers: CE 74.9 -> SD-Dropout 75.9):
  python train.py --config configs/cifar100_ablations.py:head=2fc,ce --workdir /tmp/abl_2fc_ce
  python train.py --config configs/cifar100_ablations.py:head=2fc --workdir /tmp/abl_2fc_sdd
Table 14 (rows lambda_SDD, columns beta = 0.1 / 0.3 / 0.5 / 0.7):
  0.1: 76.31 76.47 75.58 76.91 |  0.5: 75.83 76.31 76.88 76.43 |  1.0: 75.72 76.75 77.10 76.82
  2.0: 76.86 76.79 77.07 76.91 |  5.0: 76.92 76.79 76.57 69.47
  python train.py --config configs/cifar100_ablations.py:rate=0.3,weight=2.0 --workdir /tmp/abl_r03_w2
  python -m sdd_jax.sweep --config configs/cifar100_ablations.py --workdir_root /tmp/abl_t14 \
      --sweep "methods.sd_dropout.rate=0.1,0.3,0.5,0.7" \
      --sweep "methods.sd_dropout.weight=0.1,0.5,1.0,2.0,5.0"

Hardware (estimates, not measured): ResNet-18 about 1 h per run on one A100/H100; ResNet-34
about 1.5-2 h; DenseNet-121 (CIFAR stem, 32x32 maps in the first block) about 4-6 h; position
1-3 re-run the later stages twice more per step (up to about 2x ResNet-18's time at position 1);
the Table 14 grid is 20 ResNet-18 runs (about 20 GPU-hours per seed).
"""
from configs import common
from configs import cub200_resnet18

DATA = {'cifar100': None, 'cub200': ('caltech_birds2011', 200), 'dogs': ('stanford_dogs', 120)}
OWN_KEYS = ('data', 'direction', 'model', 'position', 'head', 'rate', 'weight')


def get_config(arg=None):
  values, flags = common.parse_arg(arg)
  data = values.get('data', 'cifar100')
  if data not in DATA:
    raise common.ArgError(f'unknown data={data}; known: {", ".join(DATA)}')
  if DATA[data] is None:
    config = common.recipe()
  else:
    config = cub200_resnet18.fine_grained_config(*DATA[data])
  if 'model' in values:
    config.model.name = values['model']
  if 'head' in values:
    if values['head'] != '2fc':
      raise common.ArgError(f'unknown head={values["head"]}; known: 2fc')
    config.model.head_hidden = (512,)
  sdd_keys = sorted({'direction', 'position', 'rate', 'weight'} & set(values))
  if 'ce' in flags and sdd_keys:
    raise common.ArgError(f'{", ".join(sdd_keys)} set SD-Dropout, which `ce` leaves out; '
                          'drop one')
  if 'ce' not in flags:
    sdd = dict(common.SD_DROPOUT)
    sdd['direction'] = values.get('direction', sdd['direction'])
    for key, cast in (('position', int), ('rate', float), ('weight', float)):
      if key in values:
        sdd[key] = common.cast_token(key, values[key], cast)
    config.methods.sd_dropout = sdd
  rest = ','.join([*(f'{k}={v}' for k, v in values.items() if k not in OWN_KEYS), *flags])
  return common.apply_arg(config, rest, known_flags=('ce',))
