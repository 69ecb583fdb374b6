"""The host input pipeline's rate, and the short CE vs SD-Dropout training comparison, both on
the bundled CIFAR-10 subset (`bundle.py`) through the project's own loader and trainer."""
import os
import time

import ml_collections

from configs import common
from sdd_jax import data as data_lib
from sdd_jax import methods as methods_lib
from sdd_jax.classification import trainer
from sdd_jax.config import validation as config_validation

# name -> config.methods: the paper's comparison at the two SD-Dropout weights it reports.
RUNS = {
    'ce': {},
    'sd_dropout_w1': {'sd_dropout': {**methods_lib.defaults('sd_dropout'), 'weight': 1.0}},
    'sd_dropout_w0.25': {'sd_dropout': {**methods_lib.defaults('sd_dropout'), 'weight': 0.25}},
}


def data_config(path: str, workers: int) -> ml_collections.ConfigDict:
  """CIFAR-10 from `<path>/{train,test}.npz`, the paper's augmentation and normalisation."""
  return common.data_config('cifar10', source='npz', path=path, num_classes=10,
                            num_workers=workers, prefetch=2)


def pipeline(settings, path: str) -> dict:
  """Images/s of `TrainLoader` (pad-crop + flip, uint8) with `pipeline_workers` workers, timed
  after the batches built ahead while the first was awaited have been drained."""
  config = data_config(path, settings.pipeline_workers)
  source = data_lib.create_source(config, 'train')
  loader = data_lib.TrainLoader(source, config, global_batch=settings.batch, seed=0)
  start = time.time()
  batches = loader.iterate(0)
  next(batches)
  startup = time.time() - start
  workers = data_lib.resolve_workers(config.num_workers)
  for _ in range(max(1, workers) * max(1, config.prefetch) + 1):
    next(batches)
  start = time.time()
  for _ in range(settings.pipeline_steps):
    next(batches)
  rate = settings.pipeline_steps * settings.batch / (time.time() - start)
  batches.close()
  return {'workers': workers, 'batch': settings.batch, 'steps': settings.pipeline_steps,
          'images_per_sec': rate, 'startup_s': startup, 'train_examples': len(source)}


def run_config(settings, path: str, methods: dict) -> ml_collections.ConfigDict:
  """The paper's CIFAR recipe (SGD 0.1, momentum 0.9, wd 1e-4, batch 128, lr x0.1 at 50% and
  75% of the epochs) on the subset, ResNet-18 at width `train_width` (64: D = 512)."""
  config = common.recipe()
  config.data = data_config(path, settings.train_workers)
  config.model.dtype = settings.dtype
  config.model.kwargs = {**dict(settings.model_kwargs), 'width': settings.train_width}
  config.batch_size = settings.train_batch
  config.eval_batch_size = settings.eval_batch
  config.num_epochs = settings.train_epochs
  epochs = settings.train_epochs
  config.optim.lr_boundaries = tuple(sorted({b for b in (epochs // 2, 3 * epochs // 4)
                                             if 0 < b < epochs}))
  config.methods = ml_collections.ConfigDict(methods)
  config.evals = ml_collections.ConfigDict({'accuracy': {'every_epochs': 0}})  # + NLL, ECE
  config.checkpoint_every_epochs = epochs
  config.max_to_keep = 1
  config.log_every_steps = 50
  return config


def validate(settings, path: str) -> None:
  """Every run's config against the trainer's rules, before anything runs (a UserError)."""
  for methods in RUNS.values():
    config_validation.validate(run_config(settings, path, methods))


def comparison(settings, path: str, workdir: str, deadline: float) -> dict:
  """top-1 (%), NLL (nats) and ECE (a fraction in [0, 1], 10 bins) on the subset's test split for each of RUNS;
  a run that would start after `deadline` is listed as skipped."""
  rows = {}
  for name, methods in RUNS.items():
    if time.time() > deadline:
      rows[name] = {'skipped': 'past the time budget (settings.deadline_s)'}
      continue
    start = time.time()
    summary = trainer.train_and_evaluate(run_config(settings, path, methods),
                                         os.path.join(workdir, name))
    rows[name] = {'top1': summary['test/top1'], 'nll': summary['test/nll'],
                  'ece': summary['test/ece'] / 100, 'seconds': time.time() - start,
                  'images_per_sec': summary.get('train/images_per_sec')}
  return {'epochs': settings.train_epochs, 'batch': settings.train_batch,
          'width': settings.train_width, 'feature_dim': 8 * settings.train_width,
          'dtype': settings.dtype, 'runs': rows}
