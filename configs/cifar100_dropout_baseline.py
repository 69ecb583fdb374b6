r"""Standard dropout before the head vs SD-Dropout (paper Table 11, "+Dropout (standard)").

The network is trained with cross-entropy on head(dropout(features)): inverted dropout at rate
0.5 (SD-Dropout's beta) on the pooled features, as PyTorch's `nn.Dropout` before the classifier
(method `feature_dropout`, sdd_jax/methods/feature_dropout.py); evaluation without dropout.
Recipe otherwise the paper's (configs/common.py: ResNet-18 with 3x3 stem, SGD 0.1, 200 epochs,
x0.1 at 100 and 150, batch 128).

Tokens: `data=cifar100|cub200|dogs` (the other rows: the fine-grained recipe of
configs/cub200_resnet18.py, 224 px ImageNet-style ResNet-18, batch 32), `rate=R` (dropout rate,
default 0.5), `equal_steps` (the "standard [dagger]" column, below), `samples=K` (K masks per
image and step; `equal_steps` is K = SD-Dropout's `num_samples` = 2), plus the shared `seed=N`,
`smoke`.

Commands (paper Table 11, final-epoch top-1; Base / +Dropout (standard) / +Dropout (standard,
equal steps) / +SD-Dropout):
  python train.py --config configs/cifar100_dropout_baseline.py --workdir /tmp/c100_dropout
      # CIFAR-100      74.8 / 75.4 / 73.5 / 77.0
  python train.py --config configs/cifar100_dropout_baseline.py:data=cub200 --workdir /tmp/cub_dropout
      # CUB-200-2011   53.8 / 64.6 / 60.3 / 66.6
  python train.py --config configs/cifar100_dropout_baseline.py:data=dogs --workdir /tmp/dogs_dropout
      # Stanford Dogs  64.1 / 69.5 / 68.0 / 69.8
  python train.py --config configs/cifar100_dropout_baseline.py:equal_steps --workdir /tmp/c100_dropout_eq
      # the "standard [dagger]" column (and :data=cub200,equal_steps, :data=dogs,equal_steps)
Base and +SD-Dropout: configs/cifar100_resnet18_ce.py / cifar100_resnet18_sdd.py and
configs/cub200_resnet18.py[:sdd], configs/dogs_resnet18.py[:sdd].

The "standard [dagger]" column is "standard dropout that equalizes the number of training steps
compared to SD-Dropout"; the paper does not say how. `equal_steps` reads it as the same number of
trained dropped-out head passes per image and step as SD-Dropout (two masks): the loss is
CE(head(m_1 * f)) + CE(head(m_2 * f)) (sdd_jax/methods/feature_dropout.py). The other reading,
more epochs, is `--config.num_epochs=N --config.optim.lr_boundaries=...` on the plain variant.

Hardware (estimates, not measured end to end): as cross-entropy, about 1 h on one A100/H100 for
CIFAR-100, 1-1.5 h for CUB-200-2011, 2-3 h for Stanford Dogs. The extra head passes cost little:
benchmarks/step_speed.py on a 2-core CPU, ResNet-18 batch 128, step time / CE = 1.04 (standard)
and 1.02 (equal steps), SD-Dropout 1.01 (within noise).
"""
from configs import common
from configs import cub200_resnet18

DATA = {'cifar100': None, 'cub200': ('caltech_birds2011', 200), 'dogs': ('stanford_dogs', 120)}


def get_config(arg=None):
  values, flags = common.parse_arg(arg)
  data = values.pop('data', 'cifar100')
  if data not in DATA:
    raise common.ArgError(f'unknown data={data}; known: {", ".join(DATA)}')
  config = common.recipe() if DATA[data] is None else cub200_resnet18.fine_grained_config(
      *DATA[data])
  samples = common.cast_token('samples', values.pop(
      'samples', str(common.SD_DROPOUT['num_samples'] if 'equal_steps' in flags else 1)))
  flags.discard('equal_steps')
  rate = common.cast_token('rate', values.pop('rate', '0.5'), float)
  config.methods.feature_dropout = dict(rate=rate, samples=samples)
  rest = ','.join([*(f'{k}={v}' for k, v in values.items()), *flags])
  return common.apply_arg(config, rest)
