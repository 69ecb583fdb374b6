"""Runs sdd_jax's own trainer (`trainer.train_and_evaluate`, in-process) for the comparison and
reads back the same numbers the reference reports.

A benchmark-only evaluator, `logit_stats`, is registered here (the public extension point; the
library is not changed): each epoch it takes the test logits through the trainer's own
`logits_fn`, logs `logit_stats/max_abs_logit`, `logit_stats/confidence`, ... to
`metrics.jsonl`, and leaves the last call's logits in `<workdir>/evals/logit_stats/`. The
final metrics are then computed from those logits by `logit_metrics` (the same NumPy code as
the reference's) and checked against the `accuracy` evaluator's `test/top1`.
"""
import functools
import json
import os
import time

import jax
import numpy as np

from benchmarks.torch_reference import logit_metrics
from sdd_jax import evaluators as evaluators_lib
from sdd_jax.classification import trainer
from sdd_jax.evaluators import base

LOG_EVERY_STEPS = 10**9  # the trainer then logs once per epoch: the epoch mean of every step


class LogitStats(base.Evaluator):
  """Test logits -> `logit_stats/{top1,nll,ece,confidence,max_abs_logit}`; saves them."""
  name = 'logit_stats'
  defaults = {'every_epochs': 1}

  def __call__(self, ctx, predict):
    logits, labels = [], []
    for batch in ctx.batches():
      mask = np.asarray(jax.device_get(batch['mask'])).astype(bool)
      logits.append(np.asarray(jax.device_get(predict.logits_fn(batch['images'])))[mask])
      labels.append(np.asarray(jax.device_get(batch['labels']))[mask])
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    directory = ctx.artefact_dir(self.name)
    np.save(os.path.join(directory, 'logits.npy'), logits)
    np.save(os.path.join(directory, 'labels.npy'), labels)
    return {f'{self.name}/{k}': v for k, v in logit_metrics.logit_metrics(logits, labels).items()}


if LogitStats.name not in evaluators_lib.EVALUATORS:
  evaluators_lib.EVALUATORS.register(LogitStats.name)(LogitStats)


def use_two_pass_variance() -> None:
  """Experiment (this process only): sdd_jax's ResNet BatchNorm computes the batch variance in
  two passes, mean((x - mean(x))**2) (`use_fast_variance=False`, as PyTorch), instead of flax's
  default max(0, mean(x**2) - mean(x)**2), which loses every digit once |mean| / std of a
  channel passes ~1e3 in float32."""
  from sdd_jax.models import resnet  # pylint: disable=g-import-not-at-top
  resnet.BatchNorm = functools.partial(resnet.BatchNorm, use_fast_variance=False)


def train_ours(config, seed: int, workdir: str) -> dict:
  """Trains `config` with seed `seed` in a fresh `workdir`; -> the reference's result shape."""
  config = config.copy_and_resolve_references()
  config.seed = seed
  config.log_every_steps = LOG_EVERY_STEPS
  config.checkpoint_every_epochs = config.num_epochs
  config.evals.logit_stats = {'every_epochs': 1}
  if os.path.exists(os.path.join(workdir, 'summary.json')):
    raise FileExistsError(f'{workdir} holds a finished run; give a fresh --out')
  start = time.time()
  summary = trainer.train_and_evaluate(config, workdir)
  wall = time.time() - start
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  history = {}
  for record in records:
    epoch = record['step'] / (summary['steps'] / summary['epochs'])
    if epoch != int(epoch):
      continue
    row = history.setdefault(int(epoch), {'epoch': int(epoch)})
    for key, value in record.items():
      if key.startswith('train/') and key.split('/')[1] in ('loss', 'loss_ce', 'loss_sd_dropout',
                                                            'top1'):
        row[key.replace('loss_ce', 'ce').replace('loss_sd_dropout', 'sd_dropout')] = value
      elif key.startswith('logit_stats/'):
        row['test/' + key.split('/', 1)[1]] = value
  directory = os.path.join(workdir, 'evals', LogitStats.name)
  logits = np.load(os.path.join(directory, 'logits.npy'))
  labels = np.load(os.path.join(directory, 'labels.npy'))
  final = logit_metrics.logit_metrics(logits, labels)
  if abs(final['top1'] - summary['test/top1']) > 1e-6:
    raise AssertionError(f'logit_stats top-1 {final["top1"]} != the accuracy evaluator\'s '
                         f'{summary["test/top1"]}')
  return {'final': final, 'history': [history[e] for e in sorted(history)], 'wall_seconds': wall,
          'summary': {k: v for k, v in summary.items() if isinstance(v, (int, float))},
          'test_logits': logits, 'test_labels': labels}
