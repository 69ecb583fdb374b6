"""The paper recipe (Lee et al. 2022, §4.1.1) as a function, and the shared `arg` parsing.

Every experiment config is `get_config(arg)` built on `recipe()`; `arg` is the text after the
colon in `--config=configs/x.py:ARG`, a comma-separated list of tokens:

- `smoke`: a tiny model and a few steps on synthetic data of the same shape, offline
  (the tests run every config file this way);
- `seed=N`: the seed.

Durations are epochs; `sdd_jax/train/optim.py` turns them into steps once, from the steps per epoch
the data really gives.
"""
from typing import Callable, Dict, Tuple

import ml_collections

from sdd_jax import methods
from sdd_jax import models
from sdd_jax.errors import UserError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # the SD-Dropout authors use these for CIFAR-100 too
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Paper defaults of each method: its dataclass defaults (sdd_jax/methods/<name>.py; formulas in
# docs/methods.md), read from the registry; SD_DROPOUT_COMBINED: SD-Dropout beside another method
# (its combined_defaults).
SD_DROPOUT = methods.defaults('sd_dropout')
SD_DROPOUT_COMBINED = methods.defaults('sd_dropout', combined=True)
CS_KD, PS_KD, DDGSD, BYOT, DML, LABEL_SMOOTHING = (methods.defaults(name) for name in (
    'cs_kd', 'ps_kd', 'ddgsd', 'byot', 'dml', 'label_smoothing'))


def data_config(name: str = 'cifar100', **overrides) -> ml_collections.ConfigDict:
  """`config.data`: which examples, and how they are augmented and normalised."""
  data = ml_collections.ConfigDict(dict(
      source='tfds',  # tfds | npz | folder | synthetic | digits
      name=name,  # tfds name
      data_dir=ml_collections.FieldReference(None, field_type=str),
      manual_dir=ml_collections.FieldReference(None, field_type=str),
      download=True,  # tfds: download_and_prepare when missing (needs internet)
      path='',  # npz: folder with <split>.npz; folder: root with <split>/<class>/<image>
      train_split='train',
      eval_split='test',
      image_key='image',
      label_key='label',
      augment='cifar',  # cifar | imagenet | none
      image_size=32,
      crop_padding=4,
      flip=True,
      eval_resize=256,
      mean=CIFAR10_MEAN,
      std=CIFAR10_STD,
      num_classes=100,
      num_examples=0,  # synthetic only
      synthetic_shape=(32, 32, 3),
      prefetch=2,  # batches each worker keeps ready (threads: batches built ahead)
      # Worker processes that decode and augment training batches: -1 = one per CPU core of
      # the host (resolved at run time), 0 = none (a thread of the training process).
      num_workers=-1,
  ))
  data.update(overrides)
  return data


def recipe() -> ml_collections.ConfigDict:
  """CIFAR-100, ResNet-18 (3x3 stem), SGD 0.1/0.9/wd 1e-4, 200 epochs, x0.1 at 100 and 150,
  batch 128, plain cross-entropy. Add methods under `config.methods`."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.model = ml_collections.ConfigDict(dict(
      name='resnet18_cifar',
      head_hidden=(),
      dtype='float32',  # compute dtype: bfloat16 on accelerators; parameters stay float32
      kwargs={},  # extra constructor options (e.g. width for tiny models)
      # Examples per BatchNorm statistics group in training: 0 = the whole (global) batch; G > 0
      # = ghost BN over consecutive blocks of G rows (docs/training.md, "BatchNorm groups").
      bn_group=0,
      # Start from weights in torchvision's layout ('' = off; sdd_jax/classification/init_from.py).
      init_from='',
      init_from_skip_head=False,
  ))
  config.data = data_config('cifar100')
  config.batch_size = 128  # global, over all devices and hosts
  config.eval_batch_size = 500
  config.num_epochs = 200
  config.optim = ml_collections.ConfigDict(dict(
      lr=0.1,
      momentum=0.9,
      nesterov=False,
      weight_decay=1e-4,  # PyTorch-style: added to the gradient before momentum
      lr_boundaries=(100, 150),  # epochs
      lr_decay=0.1,
      warmup_epochs=0,
  ))
  config.methods = ml_collections.ConfigDict()  # name -> hyper-parameters; empty = CE only
  # Evaluation sections `evals.<key> = {type, pred, split, every_epochs, ...}` (big_vision
  # style; sdd_jax/evaluators/sections.py): `type` the evaluator (default: the key), `pred` the
  # predictor ('' = the network; DML's 'net1', 'ensemble'), `split` ('' = data.eval_split, or
  # data.train_split), `every_epochs` the cadence during training (0: only at the end). E.g.
  # `config.evals.acc_train = {'type': 'accuracy', 'split': 'train'}` adds train accuracy as
  # `acc_train/top1`. FGSM, CIFAR-100-C and ODIN need their data sets: run them with evaluate.py
  # (a section here adds them to training; with `'in_training': False` training skips it and
  # `evaluate.py --follow` runs it beside the training: docs/evaluating.md).
  # `temperature`: temperature scaling after training (T* fitted on a validation split, else
  # two-fold cross-fitting on the eval split; never on training data unless asked).
  config.evals = ml_collections.ConfigDict({'accuracy': {'every_epochs': 1},
                                            'calibration': {'every_epochs': 0},
                                            'temperature': {'every_epochs': 0}})
  # The KL-direction probe (paper §3.3, Table 8, Figure 4): every N steps (0: off), the
  # Assumption-1 statistics and the forward/reverse KL gradients w.r.t. the head weights.
  config.probe = ml_collections.ConfigDict({'every_steps': 0, 'rate': 0.5, 'temperature': 3.0})
  # A jax.profiler trace of steps A..B into <workdir>/profile (sdd_jax/train/profiling.py); () is off.
  config.profile_steps = ()
  config.checkpoint_every_epochs = 10
  config.max_to_keep = 3
  config.log_every_steps = 50
  return config


POD_CIFAR_BATCH = 1024


def cifar_pod(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `pod` token of a CIFAR ResNet config (ours, not the paper's; docs/pods.md, "Pod
  defaults from the compile check"): global batch POD_CIFAR_BATCH, lr by the linear scaling
  rule (Goyal et al. 2017) from the paper's 0.1 per 128 images, FOLLOWING the batch (a
  `--config.batch_size` override moves it; an explicit `--config.optim.lr` wins), a 5-epoch
  linear warm-up from 0, bfloat16 compute, and BatchNorm groups of the paper's 128 examples
  (`model.bn_group`), so that each group sees the statistics noise of the paper's batch."""
  config.batch_size = POD_CIFAR_BATCH
  config.eval_batch_size = POD_CIFAR_BATCH
  config.optim.lr = config.get_ref('batch_size').to_float() * 0.1 / 128
  config.optim.warmup_epochs = 5
  config.model.dtype = 'bfloat16'
  config.model.bn_group = 128
  return config


class ArgError(UserError):
  """A bad `:ARG` token of a config file (unknown, or a value of the wrong type)."""


def cast_token(key: str, value: str, cast: Callable = int):
  """`value` of token `key=value` as `cast` (int or float); ArgError naming the token."""
  try:
    result = cast(value)
  except ValueError:
    raise ArgError(f'config argument {key}={value}: {key} must be '
                   f'{"an integer" if cast is int else "a number"}, e.g. {key}=3') from None
  if cast is float and result != result:  # NaN
    raise ArgError(f'config argument {key}={value}: {key} must be a number, e.g. {key}=0.5')
  return result


def parse_arg(arg) -> Tuple[Dict[str, str], set]:
  """'smoke,seed=3' -> ({'seed': '3'}, {'smoke'})."""
  values, flags = {}, set()
  for token in (arg or '').split(','):
    token = token.strip()
    if not token:
      continue
    if '=' in token:
      key, value = token.split('=', 1)
      values[key.strip()] = value.strip()
    else:
      flags.add(token)
  return values, flags


def apply_arg(config: ml_collections.ConfigDict, arg, known_flags=(),
              smoke_fn: Callable = None) -> ml_collections.ConfigDict:
  """Applies the shared tokens of `arg` (`smoke` through `smoke_fn`, default `smoke`;
  `seed=N`); an unknown token or a seed that is not an integer raises ArgError (a UserError:
  train.py prints it as one line)."""
  values, flags = parse_arg(arg)
  unknown = (flags - {'smoke', *known_flags}) | (set(values) - {'seed'})
  if unknown:
    raise ArgError(f'unknown config argument(s) {sorted(unknown)}; known: smoke, seed=N'
                   + ''.join(f', {f}' for f in known_flags))
  if 'seed' in values:
    config.seed = cast_token('seed', values['seed'])
  if 'smoke' in flags:
    (smoke_fn or smoke)(config)
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks `config` to a tiny model (the model's registered tiny variant,
  `models.tiny_kwargs`) and a few steps on synthetic data of the same shape."""
  data = config.data
  if data.source != 'digits':
    channels = len(data.mean)
    data.source = 'synthetic'
    if data.augment == 'imagenet':  # random-resized crops from larger images, eval 36 -> 32
      data.image_size, data.eval_resize, data.synthetic_shape = 32, 36, (40, 40, channels)
    else:
      data.synthetic_shape = (data.image_size, data.image_size, channels)
  data.num_examples = 64
  data.prefetch = 1
  data.num_workers = 0  # 64 tiny images: a worker process would cost more than it saves
  data.num_classes = min(data.num_classes, 10)
  if config.model.name in models.MODELS:  # else validation names the known models
    config.model.kwargs = {**config.model.kwargs, **models.tiny_kwargs(config.model.name)}
  config.batch_size = 16
  config.eval_batch_size = 24
  if config.model.get('bn_group', 0):  # e.g. `pod,smoke`: ghost BN kept, in groups of 8
    config.model.bn_group = 8
  config.num_epochs = 2
  config.optim.lr_boundaries = (1,)
  config.optim.warmup_epochs = 0
  config.checkpoint_every_epochs = 1
  config.log_every_steps = 2
  return config


def translation_recipe(source_lang: str, target_lang: str) -> ml_collections.ConfigDict:
  """fairseq's IWSLT recipe (`transformer_iwslt_de_en`, `label_smoothed_cross_entropy` 0.1,
  Adam (0.9, 0.98), lr 5e-4, inverse-sqrt after 4k warm-up updates, weight decay 1e-4, 4k
  tokens per batch, no clipping) for `config.task = 'translation'` (sdd_jax/translation/).
  Add `methods.ps_kd` for PS-KD."""
  config = ml_collections.ConfigDict()
  config.task = 'translation'
  config.seed = 0
  config.profile_steps = ()  # a jax.profiler trace of steps A..B into <workdir>/profile; () is off
  config.model = ml_collections.ConfigDict(dict(  # sdd_jax/translation/model.py's fields
      num_encoder_layers=6, num_decoder_layers=6, d_model=512, ffn_dim=1024, num_heads=4,
      dropout=0.3, attention_dropout=0.0, activation_dropout=0.0, pre_norm=False,
      share_decoder_embeddings=True, max_len=1024, dtype='float32'))
  config.data = ml_collections.ConfigDict(dict(
      source='files',  # files: <path>/{train,valid,test}.{src,tgt}; toy: generated
      path=f'data/iwslt15_{source_lang}_{target_lang}',
      spm_model='',  # '' = <path>/spm.model
      source_lang=source_lang, target_lang=target_lang,
      vocab_size=10000,  # joint SentencePiece vocabulary (fairseq's IWSLT: joint 10k BPE)
      tokens_per_batch=4096,  # source or target tokens incl. padding, per global batch
      num_buckets=6,  # length buckets: the train step compiles one shape per bucket
      max_len=256,  # longer training pairs (tokens + EOS) are dropped and counted
      toy_train=10000, toy_valid=500, toy_test=500, toy_seed=0))
  config.num_epochs = 50
  config.optim = ml_collections.ConfigDict(dict(
      lr=5e-4, b1=0.9, b2=0.98, eps=1e-8,
      weight_decay=1e-4,  # decoupled (AdamW), as fairseq's adam: sdd_jax/translation/optim.py
      warmup_steps=4000, clip_norm=0.0))
  config.methods = ml_collections.ConfigDict(
      {'label_smoothing': {'epsilon': 0.1}})  # + 'ps_kd': {'alpha': 0.8}
  # Decoding for BLEU (beam search; max output length max_len_a * source length + max_len_b).
  config.evals = ml_collections.ConfigDict(dict(beam_size=5, length_penalty=1.0, max_len_a=1.2,
                                                max_len_b=10))
  config.checkpoint_every_epochs = 1
  config.max_to_keep = 3
  config.log_every_steps = 100
  return config


def translation_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A tiny Transformer for a few steps on a small toy corpus, offline, in seconds."""
  config.model.update(num_encoder_layers=1, num_decoder_layers=1, d_model=32, ffn_dim=64,
                      num_heads=2, max_len=64)
  config.data.update(source='toy', path='', vocab_size=64, tokens_per_batch=512, num_buckets=2,
                     max_len=40, toy_train=200, toy_valid=16, toy_test=16)
  config.num_epochs = 2
  config.optim.warmup_steps = 4
  config.evals.update(beam_size=2, max_len_b=4)
  config.log_every_steps = 2
  return config
