r"""Images/s of the training input pipeline per worker count, and bytes sent per image.

  python benchmarks/input_pipeline.py [--npz ../shared/data/cifar10] [--workers 1,2,-1]

1. ImageNet-style: `--imagenet_images` synthetic JPEGs (quality 90, ImageNet's typical sizes:
   width 400..500, height 350..375, smooth content plus noise: ~90 KB a file, ImageNet's
   average is ~110 KB), written once to
   `--imagenet_dir/train/<class>/` (the ImageFolder layout of the `folder` source) and reused.
   The pipeline decodes each file (PIL), takes a random-resized 224 crop and flips it, in
   `num_workers` worker processes; images/s for each `--workers` entry (-1: one per core).
   Not written as tfds array_record: a tfds builder encodes images with TensorFlow, which is
   not installed here; the `tfds` source decodes the same JPEG bytes with the same PIL calls.
2. CIFAR (the real copy with `--npz`, else synthetic 32x32): plain batches, `views=2` (DDGSD)
   and `pairs=True` (CS-KD), for each `--workers` entry.
3. Bytes sent to the device per image (all image keys of a batch): float32 before, uint8 now.
4. The SD-Dropout train step's consumption for `--model` on CIFAR at `--batch` (`--train_steps`
   0 skips it), on uint8 batches normalised in the step.

Rates are timed after the workers' buffers have been drained once (steady state); the start-up
(spawning the workers) is printed apart. The load average is printed with each row: the
machine may be shared.
"""
import functools
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np
from PIL import Image

from configs import common
from sdd_jax import data
from sdd_jax import methods as methods_lib
from sdd_jax import models
from sdd_jax.train import optim
from sdd_jax import parallel
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib

_BATCH = flags.DEFINE_integer('batch', 128, 'Global batch size (CIFAR).')
_STEPS = flags.DEFINE_integer('steps', 60, 'Batches to time per CIFAR variant.')
_NPZ = flags.DEFINE_string('npz', '', 'Folder with train.npz (e.g. ../shared/data/cifar10).')
_MODEL = flags.DEFINE_string('model', 'resnet18_cifar', 'Model whose step consumption is shown.')
_STEP_COUNT = flags.DEFINE_integer('train_steps', 3, 'Timed train steps (0: skip).')
_WORKERS = flags.DEFINE_list('workers', ['1', '2', '-1'],
                             'Worker counts to time (-1: one per CPU core; 0: a thread).')
_IMAGENET_DIR = flags.DEFINE_string('imagenet_dir', '/tmp/sdd_jax_bench_imagenet',
                                    'Where the synthetic JPEGs are written once.')
_IMAGENET_IMAGES = flags.DEFINE_integer('imagenet_images', 2000, 'Synthetic JPEGs (0: skip).')
_IMAGENET_BATCH = flags.DEFINE_integer('imagenet_batch', 32, 'Global batch size (ImageNet).')
_IMAGENET_STEPS = flags.DEFINE_integer('imagenet_steps', 25, 'Batches to time per worker count.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Interleaved rounds of the ImageNet worker sweep.')
_SKIP_CIFAR = flags.DEFINE_bool('skip_cifar', False, 'Time the ImageNet-style pipeline only.')

IMAGENET_CLASSES = 10


def write_imagenet_style(root: str, count: int, seed: int = 0) -> str:
  """`count` JPEGs (quality 90) in `root/train/<class>/`; kept when a previous call wrote the
  same set (the file `root/complete` records it). -> root."""
  stamp = f'{count} {seed} q90 noise20'
  marker = os.path.join(root, 'complete')
  if os.path.exists(marker) and open(marker, encoding='utf-8').read() == stamp:
    return root
  shutil.rmtree(root, ignore_errors=True)
  rng = np.random.default_rng(seed)
  for i in range(count):
    width, height = int(rng.integers(400, 501)), int(rng.integers(350, 376))
    coarse = rng.integers(0, 256, (int(rng.integers(16, 48)), int(rng.integers(16, 48)), 3),
                          dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    pixels = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
    folder = os.path.join(root, 'train', f'class{i % IMAGENET_CLASSES:02d}')
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(pixels).save(os.path.join(folder, f'{i:05d}.JPEG'), quality=90)
  with open(marker, 'w', encoding='utf-8') as f:
    f.write(stamp)
  return root


def _load() -> str:
  return '/'.join(f'{x:.1f}' for x in os.getloadavg())


def pipeline_rate(source, config, *, global_batch: int, steps: int, workers: int, **options):
  """-> (images/s at steady state, seconds to the first batch, one batch)."""
  config = config.copy_and_resolve_references()
  config.num_workers = workers
  loader = data.TrainLoader(source, config, global_batch=global_batch, seed=0, **options)
  start = time.time()
  batches = loader.iterate(0)
  batch = next(batches)
  startup = time.time() - start
  for _ in range(max(1, data.resolve_workers(workers)) * max(1, config.prefetch) + 1):
    next(batches)  # drain what was built ahead while the first batch was awaited
  start = time.time()
  for _ in range(steps):
    next(batches)
  rate = steps * global_batch / (time.time() - start)
  batch = {k: np.array(v) for k, v in batch.items()}
  batches.close()
  return rate, startup, batch


def bytes_per_image(batch) -> tuple:
  """-> (bytes before: image keys as float32, bytes now), per example of `batch`, all keys."""
  rows = len(batch['labels'])
  now = sum(v.nbytes for v in batch.values())
  before = sum(v.size * 4 if k in data.IMAGE_KEYS else v.nbytes for k, v in batch.items())
  return before / rows, now / rows


def _worker_counts():
  counts = []
  for text in _WORKERS.value:
    count = data.resolve_workers(int(text))
    if count not in counts:
      counts.append(count)
  return counts


def _label(count: int) -> str:
  return f'{count}' + (' (all cores)' if count == data.resolve_workers(-1) else '')


def imagenet_table(sizes: dict):
  root = write_imagenet_style(_IMAGENET_DIR.value, _IMAGENET_IMAGES.value)
  config = common.data_config('imagenet_style', source='folder', path=root,
                              num_classes=IMAGENET_CLASSES, augment='imagenet', image_size=224,
                              crop_padding=0, mean=common.IMAGENET_MEAN,
                              std=common.IMAGENET_STD, prefetch=2)
  source = data.create_source(config, 'train')
  kilobytes = np.mean([os.path.getsize(f) for f in source.files]) / 1024
  print(f'\nImageNet-style: {len(source)} JPEGs (q90, 400..500 x 350..375, {kilobytes:.0f} KB '
        f'on average) in {root}, '
        f'decode + random-resized crop 224 + flip, batch {_IMAGENET_BATCH.value}, '
        f'{os.cpu_count()} CPU cores')
  print(f'{"workers":<16}{"images/s":>10}{"min":>8}{"max":>8}{"per worker":>12}'
        f'{"x 1 worker":>12}{"start-up s":>12}  (median of {_REPEATS.value} interleaved rounds)')
  rates, startups, loads = {}, {}, [_load()]
  for _ in range(_REPEATS.value):
    for count in _worker_counts():
      rate, startup, batch = pipeline_rate(source, config, global_batch=_IMAGENET_BATCH.value,
                                           steps=_IMAGENET_STEPS.value, workers=count)
      rates.setdefault(count, []).append(rate)
      startups.setdefault(count, []).append(startup)
    loads.append(_load())
  base = np.median(rates[1]) if 1 in rates else None
  for count, values in rates.items():
    rate = np.median(values)
    speedup = f'{rate / base:.2f}' if base else '-'
    print(f'{_label(count):<16}{rate:>10.1f}{min(values):>8.0f}{max(values):>8.0f}'
          f'{rate / max(count, 1):>12.1f}{speedup:>12}{np.median(startups[count]):>12.1f}')
  print(f'load average (1/5/15 min) before and after each round: {" | ".join(loads)}')
  sizes['imagenet 224 (plain)'] = bytes_per_image(batch)


def cifar_table(sizes: dict):
  config = common.data_config('cifar10', num_classes=10, prefetch=2)
  if _NPZ.value:
    config.update(source='npz', path=_NPZ.value)
  else:
    config.update(source='synthetic', num_examples=50_000, synthetic_shape=(32, 32, 3))
  source = data.create_source(config, 'train')
  print(f'\nCIFAR: {config.source} ({len(source)} examples), batch {_BATCH.value}, pad-crop + '
        f'flip')
  print(f'{"variant":<18}{"workers":<16}{"images/s":>10}{"start-up s":>12}  load avg')
  for name, options in (('plain', {}), ('views=2 (ddgsd)', {'views': 2}),
                        ('pairs (cs_kd)', {'pairs': True})):
    for count in _worker_counts():
      rate, startup, batch = pipeline_rate(source, config, global_batch=_BATCH.value,
                                           steps=_STEPS.value, workers=count, **options)
      print(f'{name:<18}{_label(count):<16}{rate:>10.0f}{startup:>12.1f}  {_load()}',
            flush=True)
    sizes[f'cifar 32 ({name})'] = bytes_per_image(batch)
  return source


def step_rate(num_classes: int) -> float:
  """Images/s of the SD-Dropout train step on uint8 CIFAR batches (normalised in the step)."""
  mesh = parallel.create_mesh()
  model = models.get_model(_MODEL.value, num_classes=num_classes)
  config = common.recipe()
  schedule = optim.make_lr_schedule(config.optim, 391)
  tx = optim.make_optimizer(config.optim, schedule)
  rng = np.random.default_rng(0)
  batch = parallel.to_global({
      'images': rng.integers(0, 256, (_BATCH.value, 32, 32, 3), np.uint8),
      'labels': rng.integers(0, num_classes, _BATCH.value).astype(np.int32)}, mesh)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx),
                  out_shardings=parallel.replicated_sharding(mesh))(
                      state_lib.init_key(0), np.zeros((1, 32, 32, 3), np.float32))
  step_fn = step_lib.make_train_step(
      model, tx, methods_lib.create_methods({'sd_dropout': dict(common.SD_DROPOUT)}), seed=0,
      lr_schedule=schedule, mesh=mesh, normalize_fn=data.make_normalize_fn(config.data))
  state, metrics = step_fn(state, batch)
  jax.block_until_ready(metrics)
  start = time.time()
  for _ in range(_STEP_COUNT.value):
    state, metrics = step_fn(state, batch)
  jax.block_until_ready((state, metrics))
  return _STEP_COUNT.value * _BATCH.value / (time.time() - start)


def main(argv):
  del argv
  sizes = {}
  if _IMAGENET_IMAGES.value:
    imagenet_table(sizes)
  if not _SKIP_CIFAR.value:
    cifar_table(sizes)
  print(f'\n{"bytes to the device per example":<34}{"before (float32)":>18}{"now (uint8)":>14}'
        f'{"ratio":>8}')
  for name, (before, now) in sizes.items():
    print(f'{name:<34}{before:>18.0f}{now:>14.0f}{before / now:>8.2f}')
  if _STEP_COUNT.value and not _SKIP_CIFAR.value:
    print(f'\ntrain step {_MODEL.value} + sd_dropout {step_rate(10):>8.0f} images/s '
          f'({jax.device_count()} x {jax.devices()[0].device_kind})')


if __name__ == '__main__':
  app.run(main)
