"""The SD-Dropout authors' training loop in PyTorch, on our data sources and config values.

What it does, as the authors' code (yechanp/self_kd) and PyTorch defaults do it:

- model: `model.CifarResNet` (torchvision-style CIFAR ResNet-18, torchvision init);
- data: `sdd_jax.data.create_source(config.data, split)` (the same uint8 arrays as ours);
  training transforms torchvision's `RandomCrop(image_size, padding=crop_padding)` (zero fill),
  `RandomHorizontalFlip()` when `config.data.flip`, `ToTensor` (/255) and `Normalize(mean,
  std)`; a `DataLoader(shuffle=True)`. `drop_last=True` by default, as our loader (the
  authors' loaders keep the last partial batch: `drop_last=False` is an option);
- optimiser: `torch.optim.SGD(lr, momentum, weight_decay, nesterov)` (weight decay coupled:
  added to the gradient before momentum, on every parameter) and
  `MultiStepLR(milestones=lr_boundaries, gamma=lr_decay)` stepped once per epoch;
- loss: `CE(head(f), y) + weight * T**2 * (KL(p_v || p_u) + KL(p_u || p_v))` with
  `z_u = head(F.dropout(f, rate))`, `z_v = head(F.dropout(f, rate))`, each KL as
  `F.kl_div(F.log_softmax(z_a / T), F.softmax(z_b / T), reduction='batchmean')`, gradients
  through both arguments (the paper's 'both'; `direction='forward'` / `'reverse'` detach each
  KL's first / second argument); plain CE when the config has no sd_dropout;
- evaluation every epoch in `eval()` mode (running BatchNorm statistics, no dropout).

Seeded: `torch.manual_seed(seed)` fixes the initialisation, the data order, the augmentation
and the masks; CPU runs of the same seed repeat exactly.
"""
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils import data as torch_data
from torchvision.transforms import v2 as transforms

from benchmarks.torch_reference import logit_metrics
from benchmarks.torch_reference import model as model_lib
from sdd_jax import data as data_lib


def kl_batchmean(logits_student: torch.Tensor, logits_teacher: torch.Tensor,
                 temperature: float, log_target: bool = False) -> torch.Tensor:
  """KL(p_teacher || p_student) at temperature T, summed over classes, mean over the batch.

  `log_target=False` is the authors' form, `kl_div(log_softmax(s), softmax(t))`: once a logit
  gap exceeds ~100 T, a teacher probability underflows to 0 and the backward through it is
  0 * log(0) = NaN (the forward stays finite). `log_target=True` passes `log_softmax(t)`: the
  same value and gradient wherever both are finite, and finite everywhere (as ours).
  """
  log_p_student = F.log_softmax(logits_student / temperature, dim=1)
  if log_target:
    return F.kl_div(log_p_student, F.log_softmax(logits_teacher / temperature, dim=1),
                    reduction='batchmean', log_target=True)
  return F.kl_div(log_p_student, F.softmax(logits_teacher / temperature, dim=1),
                  reduction='batchmean')


def sd_dropout_loss(model: model_lib.CifarResNet, images: torch.Tensor, labels: torch.Tensor,
                    sd_config: Optional[dict],
                    masks: Optional[Sequence[torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
  """One training-mode forward and the loss.

  Args:
    model: the network (in train() mode for a training step).
    images: NCHW float; labels: int64 [batch].
    sd_config: {'weight', 'temperature', 'rate'[, 'log_target']} or None (plain
      cross-entropy); `log_target` picks the KL's form (`kl_batchmean`).
    masks: two [batch, D] inverted-dropout masks to use instead of `F.dropout`'s (tests
      inject the masks the JAX step drew).

  Returns:
    {'loss', 'ce', 'sd_dropout' (the unweighted symmetric KL), 'logits'}.
  """
  features = model.features(images)
  logits = model.classifier(features)
  ce = F.cross_entropy(logits, labels)
  out = {'ce': ce, 'logits': logits, 'loss': ce}
  if sd_config:
    temperature = sd_config['temperature']
    if masks is None:
      dropped = [F.dropout(features, p=sd_config['rate'], training=True) for _ in range(2)]
    else:
      dropped = [mask * features for mask in masks]
    logits_u, logits_v = (model.classifier(x) for x in dropped)
    log_target = bool(sd_config.get('log_target', False))
    direction = sd_config.get('direction', 'both')
    # kl_batchmean(student, teacher) = KL(p_teacher || p_student): 'forward' (Eq. 6, the authors'
    # --detach) detaches each KL's first argument (the teacher), 'reverse' (Eq. 7) the second.
    teacher = (lambda z: z.detach()) if direction == 'forward' else (lambda z: z)
    student = (lambda z: z.detach()) if direction == 'reverse' else (lambda z: z)
    term = (kl_batchmean(student(logits_v), teacher(logits_u), temperature, log_target)
            + kl_batchmean(student(logits_u), teacher(logits_v), temperature, log_target))
    out['sd_dropout'] = term
    out['loss'] = ce + sd_config['weight'] * temperature**2 * term
  return out


def sd_dropout_config(config) -> Optional[dict]:
  """config.methods -> the SD-Dropout hyper-parameters, None for CE; other methods refused."""
  methods = dict(config.methods)
  unknown = set(methods) - {'sd_dropout'}
  if unknown:
    raise ValueError(f'the torch reference implements CE and sd_dropout only, got {sorted(unknown)}')
  if not methods:
    return None
  sd = dict(methods['sd_dropout'])
  if sd.get('num_samples', 2) != 2 or sd.get('position', 4) != 4:
    raise ValueError('the torch reference implements num_samples=2, position=4 only')
  return {**{k: float(sd[k]) for k in ('weight', 'temperature', 'rate')},
          'direction': sd.get('direction', 'both')}


def create_model(config, in_channels: int, bn_momentum: float = 0.1) -> model_lib.CifarResNet:
  if config.model.name != 'resnet18_cifar' or tuple(config.model.head_hidden):
    raise ValueError('the torch reference is resnet18_cifar with a linear head only')
  kwargs = dict(config.model.kwargs)
  unknown = set(kwargs) - {'width', 'stage_sizes'}
  if unknown:
    raise ValueError(f'unsupported model kwargs {sorted(unknown)}')
  return model_lib.CifarResNet(config.data.num_classes, kwargs.get('width', 64), in_channels,
                               tuple(kwargs.get('stage_sizes', (2, 2, 2, 2))), bn_momentum)


def make_optimizer(model: torch.nn.Module, optim_config):
  """SGD with coupled weight decay on every parameter, lr x lr_decay at each boundary epoch."""
  if optim_config.warmup_epochs:
    raise ValueError('the torch reference has no warm-up; set config.optim.warmup_epochs=0')
  optimizer = torch.optim.SGD(model.parameters(), lr=optim_config.lr,
                              momentum=optim_config.momentum,
                              weight_decay=optim_config.weight_decay,
                              nesterov=optim_config.nesterov)
  scheduler = torch.optim.lr_scheduler.MultiStepLR(
      optimizer, milestones=[int(e) for e in optim_config.lr_boundaries],
      gamma=optim_config.lr_decay)
  return optimizer, scheduler


class _Images(torch_data.Dataset):
  """uint8 [N, H, W, C] + labels -> (transformed CHW float image, label)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
    self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    self.labels = torch.from_numpy(np.asarray(labels, np.int64))
    self.transform = transform

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return self.transform(self.images[i]), self.labels[i]


def _transforms(data_config, train: bool):
  if data_config.augment not in ('cifar', 'none'):
    raise ValueError('the torch reference implements augment=cifar (pad-and-crop, flip) only')
  steps = []
  if train and data_config.augment == 'cifar':
    steps.append(transforms.RandomCrop(data_config.image_size, padding=data_config.crop_padding))
    if data_config.flip:
      steps.append(transforms.RandomHorizontalFlip())
  steps += [transforms.ToDtype(torch.float32, scale=True),
            transforms.Normalize(list(data_config.mean), list(data_config.std))]
  return transforms.Compose(steps)


def _arrays(data_config, split: str):
  source = data_lib.create_source(data_config, split)
  if not hasattr(source, 'images'):
    raise ValueError('the torch reference needs an in-memory source (digits, npz, synthetic)')
  return source.images, source.labels()


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> np.ndarray:
  """Evaluation-mode logits [N, classes] as float32 NumPy."""
  model.eval()
  return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
                   ).numpy()


def train_reference(config, seed: int, *, drop_last: bool = True, bn_momentum: float = 0.1,
                    log_target_kl: bool = False, log: Callable[[str], None] = print) -> dict:
  """Trains `config` with seed `seed`; returns {'final': metrics, 'history': [per epoch],
  'wall_seconds', 'test_logits', 'test_labels', 'model', 'diverged_step'}. Metrics come from
  `logit_metrics`.

  A step whose loss or gradients are not finite is not applied and training stops there
  (`diverged_step`, else None): the authors' loop would go on with NaN parameters (chance
  accuracy); ours stops with NonFiniteLossError. The final metrics are then the last finite
  model's."""
  start = time.time()
  torch.manual_seed(seed)
  np.random.seed(seed)
  sd_config = sd_dropout_config(config)
  if sd_config:
    sd_config['log_target'] = log_target_kl
  train_images, train_labels = _arrays(config.data, config.data.train_split)
  test_images, test_labels = _arrays(config.data, config.data.eval_split)
  model = create_model(config, train_images.shape[-1], bn_momentum)
  optimizer, scheduler = make_optimizer(model, config.optim)
  loader = torch_data.DataLoader(
      _Images(train_images, train_labels, _transforms(config.data, train=True)),
      batch_size=config.batch_size, shuffle=True, drop_last=drop_last,
      generator=torch.Generator().manual_seed(seed))
  test_transform = _transforms(config.data, train=False)
  test_x = test_transform(torch.from_numpy(np.ascontiguousarray(
      test_images.transpose(0, 3, 1, 2))))
  history, diverged_step, step = [], None, 0
  for epoch in range(config.num_epochs):
    model.train()
    sums = {'loss': 0.0, 'ce': 0.0, 'sd_dropout': 0.0, 'top1': 0.0}
    steps, max_abs = 0, 0.0
    for images, labels in loader:
      out = sd_dropout_loss(model, images, labels, sd_config)
      optimizer.zero_grad(set_to_none=True)
      out['loss'].backward()
      grad_norm = torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
      if not (torch.isfinite(out['loss']) and torch.isfinite(grad_norm).all()):
        diverged_step = step
        log(f'reference seed {seed}: non-finite loss or gradient at step {step} (epoch '
            f'{epoch + 1}), max|logit| {float(out["logits"].detach().abs().max()):.1f}; stopped')
        break
      optimizer.step()
      steps += 1
      step += 1
      for key in ('loss', 'ce', 'sd_dropout'):
        sums[key] += float(out[key].detach()) if key in out else 0.0
      sums['top1'] += 100 * float((out['logits'].argmax(1) == labels).float().mean())
      max_abs = max(max_abs, float(out['logits'].detach().abs().max()))
    if not steps:
      break
    scheduler.step()
    test = logit_metrics.logit_metrics(predict(model, test_x, config.eval_batch_size),
                                       test_labels)
    row = {'epoch': epoch + 1, **{f'train/{k}': v / steps for k, v in sums.items()},
           'train/max_abs_logit': max_abs, **{f'test/{k}': v for k, v in test.items()}}
    if not sd_config:
      row.pop('train/sd_dropout')
    history.append(row)
    if diverged_step is not None:
      break
    log(f'reference seed {seed} epoch {epoch + 1}: loss {row["train/loss"]:.4f} train top-1 '
        f'{row["train/top1"]:.1f} test top-1 {test["top1"]:.2f} max|logit| {max_abs:.1f}')
  logits = predict(model, test_x, config.eval_batch_size)
  return {'final': logit_metrics.logit_metrics(logits, test_labels), 'history': history,
          'wall_seconds': time.time() - start, 'test_logits': logits,
          'test_labels': np.asarray(test_labels), 'model': model, 'diverged_step': diverged_step}
