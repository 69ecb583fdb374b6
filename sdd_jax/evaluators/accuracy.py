"""`accuracy`: top-1, top-5, NLL and 10-bin ECE over every example of the eval split.

The batches are padded and carry a `mask`; each batch reduces to sums on the device, so the
result does not depend on the batch size and counts all N examples (docs/evaluation.md §0.5, §1-2).
Keys: `test/top1`, `test/top5`, `test/nll`, `test/ece` (percent), `test/count`, and
`test/nonfinite`: how many examples had a NaN or ±inf logit. Those count as wrong, with NLL
+inf (so `test/nll` is inf, written as null) and confidence 1.0 (`metrics.py`).
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax.metrics import calibration as calibration_metrics
from sdd_jax.metrics import classification as metrics
from sdd_jax.evaluators import base


@jax.jit
def batch_sums(logits, labels, mask):
  """Sums over the masked rows of one batch: counts, correct top-1/top-5, NLL, ECE bins and
  examples with non-finite logits."""
  keep = mask.astype(bool)
  mask = mask.astype(jnp.float32)
  confidences, correct = metrics.confidence_and_correct(logits, labels)
  return {
      'count': jnp.sum(mask),
      'top1': jnp.sum(metrics.topk_correct(logits, labels, 1) * mask),
      'top5': jnp.sum(metrics.topk_correct(logits, labels, min(5, logits.shape[-1])) * mask),
      # where, not * mask: a padding row's NLL may be inf, and inf * 0 is NaN.
      'nll': jnp.sum(jnp.where(keep, metrics.nll(logits, labels), 0.0)),
      'nonfinite': jnp.sum(metrics.nonfinite_rows(logits) * mask),
      'bins': metrics.calibration_bin_stats(confidences, correct, mask, num_bins=10),
  }


@jax.jit
def batch_calibration(logits, labels, mask):
  """What the calibration evaluator adds to the eval split's one pass: sums over the masked rows
  (Brier, class-wise ECE bins) and per-example rows to gather (confidence, correct, nonfinite)."""
  keep = mask.astype(bool)
  confidences, correct = metrics.confidence_and_correct(logits, labels)
  sums = {'brier': jnp.sum(jnp.where(keep, calibration_metrics.brier(logits, labels), 0.0)),
          'classwise': calibration_metrics.classwise_bin_stats(logits, labels, mask)}
  rows = {'confidence': confidences, 'correct': correct,
          'nonfinite': ~metrics.finite_rows(logits)}
  return sums, rows


def request_calibration(ctx, predict) -> None:
  """Asks the shared pass of `predict` over the context's split to compute `batch_calibration`
  too (the runner calls it, through `Calibration.prepare`, before any evaluator runs, so that an
  accuracy section that runs first predicts once for both)."""
  if ctx.cache is not None:
    ctx.cache[('calibration', predict.logits_fn)] = True


def accumulate_sums(ctx, predict, source=None, calibration=False):
  """Sums of `batch_sums` over every batch of `source`, float64 on the host.

  With `calibration` (or `request_calibration` made), the pass over the context's own split
  (`source` None) also sums `batch_calibration` and gathers its per-example rows to the host
  (`'rows'`: `[N]` arrays of the real examples); accuracy alone skips that cost. Over the split,
  one pass per predictor is shared through `ctx.cache` by every evaluator of one evaluation
  (accuracy, calibration, corruption's clean accuracy); the result is then shared: do not
  modify it."""
  if source is None and ctx.cache is not None:
    key = ('accumulate_sums', predict.logits_fn)
    calibration = calibration or ctx.cache.get(('calibration', predict.logits_fn), False)
    if key not in ctx.cache or (calibration and 'rows' not in ctx.cache[key]):
      ctx.cache[key] = accumulate_sums(dataclasses.replace(ctx, cache=None), predict,
                                       calibration=calibration)
    return ctx.cache[key]
  calibration = calibration and source is None
  total, rows = None, []
  for batch in ctx.batches(source):
    logits = predict.logits_fn(batch['images'])
    sums = batch_sums(logits, batch['labels'], batch['mask'])
    if calibration:
      extra, per_example = batch_calibration(logits, batch['labels'], batch['mask'])
      sums = {**sums, **extra}
      rows.append(base.host_rows(per_example, batch['mask']))
    sums = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(sums))
    total = sums if total is None else jax.tree.map(np.add, total, sums)
  if calibration and total is not None:
    total['rows'] = jax.tree.map(lambda *x: np.concatenate(x), *rows)
  return total


class Accuracy(base.Evaluator):
  name = 'accuracy'
  defaults = {'every_epochs': 1, 'prefix': 'test'}

  @property
  def namespace(self) -> str:
    return self.section['prefix']

  def __call__(self, ctx, predict):
    total = accumulate_sums(ctx, predict)
    prefix, count = self.section['prefix'], float(total['count'])
    ece, _ = metrics.ece_from_bin_stats(total['bins'])
    return {f'{prefix}/top1': 100 * float(total['top1']) / count,
            f'{prefix}/top5': 100 * float(total['top5']) / count,
            f'{prefix}/nll': float(total['nll']) / count,
            f'{prefix}/ece': 100 * ece,
            f'{prefix}/count': count,
            f'{prefix}/nonfinite': float(total['nonfinite'])}
