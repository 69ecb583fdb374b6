"""`odin`: out-of-distribution detection with ODIN and the MSP baseline (docs/evaluation.md §5).

ODIN (Liang et al. 2018; facebookresearch/odin `calData.py`), for a pixel image x:
ŷ = argmax f(x); g = ∇_x CE(f(x)/T, ŷ) (summed over the batch, §0.5); x̃ = x − ε·s(g) with
s(g) = +1 where g >= 0 (zero included, `metrics.odin_sign`) and ε in [0, 1] pixel units, i.e.
−(ε/σ_c)·s(g) on the normalised tensor the batches hold; no clipping. Score = max log-softmax
(f(x̃)/T) (a monotone transform of max softmax: same metrics, no saturation). MSP (Hendrycks &
Gimpel 2017) is T = 1, ε = 0. The in-distribution split is the positive class.

Balanced protocol (§5.3): for each OOD set D, N_D = min(`max_examples`, |D|) (and at most the
in-distribution size); in-distribution = eval-split positions [`holdout`, N_D) and OOD =
positions [`holdout`, N_D) of D, both in canonical order (§0.6: TFDS `id` / `file_name`,
sorted paths for folders). Metrics are the exact sweeps of `ood_metrics.ood_metrics` (§5.4).

Section: `sets` (see `data/ood.py`: svhn, dtd, lsun, lsun_resize, isun, NAME=/folder,
NAME=tfds:BUILDER[:SPLIT]), `folder_root` (holds LSUN/, LSUN_resize/, iSUN/), `data_dir`
(tfds; default `config.data.data_dir`), `temperature` (1000), `epsilon` (0.0014), `holdout`
(1000), `max_examples` (10000). ODIN's T and ε are the README defaults: the SD-Dropout paper
only says "the same values as the original paper".

Keys (percent; n as counts), for each set that ran: `odin/<set>/{fpr95, detection_error,
detection_error_at_tpr95, auroc, aupr_in, aupr_out, n_in, n_out, nonfinite_in, nonfinite_out}`
and the same under `msp/<set>/`. `nonfinite_*` count the examples whose logits (perturbed ones
for ODIN) held a NaN or ±inf: they have no score and are ranked as the worst case for detection
(`ood_metrics.worst_case_scores`: an in-distribution one below, an OOD one above every other
score), so they can only lower the metrics.
A set whose data is missing gives `skipped/odin/<set>` = 1 (the reason is logged and in
results.json); if every set is missing the evaluator raises `Skipped`.
"""
import functools
import logging
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax.metrics import classification as metrics
from sdd_jax.metrics import ood as ood_metrics
from sdd_jax.data import canonical
from sdd_jax.data import ood
from sdd_jax.evaluators import base
from sdd_jax.evaluators import results as results_lib

METRICS = ('fpr95', 'detection_error', 'detection_error_at_tpr95', 'auroc', 'aupr_in',
           'aupr_out')
LABEL = ('ODIN: x~ = x - eps * s(grad_x CE(f(x)/T, argmax f(x))), eps in [0, 1] pixel units '
         '(eps/sigma_c on the normalised tensor), s(0) = +1, no clipping; score = max '
         'log-softmax(f(x~)/T). MSP baseline: T = 1, eps = 0. In-distribution is the positive '
         'class. Balanced protocol: N_D = min(max_examples, |D|); in-distribution positions '
         '[holdout, N_D) of the eval split and OOD positions [holdout, N_D) of D, both in '
         'canonical order. FPR at 95% TPR, detection error = min over thresholds of '
         '(1 - TPR + FPR) / 2, AUROC, AUPR-in, AUPR-out: exact sweeps over the observed scores '
         '(no threshold grid), in %. T and eps are the ODIN README defaults (the paper does '
         'not state them). "lsun" is ODIN\'s LSUN (crop), taken as the paper\'s "LSUN"; '
         '"lsun_resize" is the secondary variant.')


def perturb(images: jax.Array, grads: jax.Array, step: Sequence[float]) -> jax.Array:
  """ODIN's input step on normalised images: images − step_c · s(grads), s(0) = +1, no clip.

  Args:
    images: `[batch, H, W, C]` normalised.
    grads: `[batch, H, W, C]` ∇ of Σ CE(f(images)/T, ŷ) w.r.t. `images`.
    step: `[C]` ε/σ_c (pixel ε in normalised units); a compile-time constant (no host-to-device
      copy: the training loop's transfer guard allows none).
  """
  return _perturb(images, grads, tuple(float(x) for x in np.ravel(step)))


@functools.partial(jax.jit, static_argnums=2)
def _perturb(images, grads, step):
  return images - jnp.asarray(step, images.dtype) * metrics.odin_sign(grads)


@functools.partial(jax.jit, static_argnums=1)
def _scores(logits, temperature):
  return metrics.max_log_softmax(logits, temperature), jnp.argmax(logits, axis=-1)


def batch_scores(predict, images: jax.Array, std: Sequence[float], temperature: float,
                 epsilon: float) -> Dict[str, jax.Array]:
  """{'odin': max log-softmax(f(x̃)/T), 'msp': max log-softmax(f(x))} `[batch]` for normalised
  `images`; ε in pixel units, `std` the per-channel normalisation std."""
  logits = predict.logits_fn(images)
  msp, predicted = _scores(logits, 1.0)
  if epsilon:
    grads = predict.input_grad_fn(images, predicted.astype(jnp.int32), temperature)
    step = epsilon / np.asarray(std, np.float64)
    logits = predict.logits_fn(perturb(images, grads, step))
  odin, _ = _scores(logits, temperature)
  return {'odin': odin, 'msp': msp}


def source_scores(ctx, predict, source, temperature: float,
                  epsilon: float) -> Dict[str, np.ndarray]:
  """ODIN and MSP scores of every example of `source`, in its order: {'odin', 'msp'} `[n]`."""
  parts = {'odin': [], 'msp': []}
  for batch in ctx.batches(source):
    scores = batch_scores(predict, batch['images'], ctx.data_config.std, temperature, epsilon)
    for key, value in scores.items():
      parts[key].append(base.host_rows(value, batch['mask']))
  return {key: np.concatenate(value) for key, value in parts.items()}


def detection_metrics(scores_in, scores_out) -> Dict[str, float]:
  """The §5.4 metrics plus the secondary detection error at the FPR95 threshold (fractions);
  a non-finite score is ranked as the worst case (`ood_metrics.worst_case_scores`)."""
  scores_in, scores_out, _, _ = ood_metrics.worst_case_scores(scores_in, scores_out)
  out = ood_metrics.ood_metrics(scores_in, scores_out)
  out['detection_error_at_tpr95'] = ood_metrics.detection_error_at_tpr(scores_in, scores_out, 0.95)
  return out


class Odin(base.Evaluator):
  name = 'odin'
  defaults = {'every_epochs': 0, 'sets': ('svhn', 'dtd', 'lsun', 'lsun_resize', 'isun'),
              'folder_root': '', 'data_dir': '', 'temperature': 1000.0, 'epsilon': 0.0014,
              'holdout': 1000, 'max_examples': 10000}
  namespace = ''  # keys `odin/...` and `msp/...`: a section keyed otherwise prefixes both

  @classmethod
  def check_section(cls, section):
    temperature, epsilon = float(section['temperature']), float(section['epsilon'])
    holdout, max_examples = int(section['holdout']), int(section['max_examples'])
    if not (temperature > 0 and epsilon >= 0 and holdout >= 0 and max_examples >= 1):
      raise ValueError('config.evals.odin: need temperature > 0, epsilon >= 0, holdout >= 0 and '
                       f'max_examples >= 1; got {temperature}, {epsilon}, {holdout}, '
                       f'{max_examples}')
    ood.parse_sets(section['sets'], section['folder_root'])

  def __call__(self, ctx, predict):
    if predict.input_grad_fn is None:
      raise ValueError('odin needs Predictors.input_grad_fn (the input gradient)')
    section = self.section
    self.check_section(section)
    holdout, max_examples = int(section['holdout']), int(section['max_examples'])
    temperature, epsilon = float(section['temperature']), float(section['epsilon'])
    data_dir = section['data_dir'] or ctx.data_config.data_dir or ''
    opened, skipped = {}, {}
    for ood_set in ood.parse_sets(section['sets'], section['folder_root']):
      try:
        source, order = ood.open_set(ood_set, data_dir)
      except ood.MissingDataError as e:
        skipped[ood_set.name] = str(e)
        continue
      stop = min(max_examples, len(source), len(ctx.source))
      if stop <= holdout:
        skipped[ood_set.name] = (f'OOD set {ood_set.name!r}: {len(source)} examples (eval split '
                                 f'{len(ctx.source)}) leave none after the held-out first '
                                 f'{holdout}; lower config.evals.odin.holdout')
        continue
      opened[ood_set.name] = (ood_set, source, order, stop)
    for name, message in skipped.items():
      logging.warning('odin: set %s skipped: %s', name, message)
    if not opened:
      raise base.Skipped(' | '.join(skipped.values()) or 'config.evals.odin.sets is empty')

    in_order = canonical.canonical_order(ctx.data_config, ctx.data_config.eval_split, ctx.source)
    in_stop = max(stop for *_, stop in opened.values())
    in_source = canonical.IndexedSource(ctx.source, in_order[holdout:in_stop])
    in_scores = source_scores(ctx, predict, in_source, temperature, epsilon)
    out, details, rows = {}, {}, []
    for name, (ood_set, source, order, stop) in opened.items():
      set_transform = None  # 'imagenet' eval preprocessing resizes and crops any size itself
      if ctx.data_config.augment != 'imagenet':
        set_transform = ood.make_transform(ctx.data_config.image_size,
                                           len(ctx.data_config.mean), ood_set.resize_shorter)
      out_source = canonical.IndexedSource(source, order[holdout:stop], set_transform)
      out_scores = source_scores(ctx, predict, out_source, temperature, epsilon)
      n = stop - holdout
      details[name] = {'source': ood.describe(ood_set), 'size': len(source), 'N_D': stop,
                       'holdout': holdout, 'n_in': n, 'n_out': n}
      for method, (t, eps) in (('odin', (temperature, epsilon)), ('msp', (1.0, 0.0))):
        values = detection_metrics(in_scores[method][:n], out_scores[method])
        values['nonfinite_in'] = int(np.sum(~np.isfinite(in_scores[method][:n])))
        values['nonfinite_out'] = int(np.sum(~np.isfinite(out_scores[method])))
        out.update({f'{method}/{name}/{k}': 100 * values[k] for k in METRICS})
        out[f'{method}/{name}/n_in'] = float(n)
        out[f'{method}/{name}/n_out'] = float(n)
        out[f'{method}/{name}/nonfinite_in'] = float(values['nonfinite_in'])
        out[f'{method}/{name}/nonfinite_out'] = float(values['nonfinite_out'])
        details[name][method] = {'temperature': t, 'epsilon': eps, **values}
        rows.append((name, method.upper(), f'{t:g}', f'{eps:g}', n, n,
                     *(100 * values[k] for k in METRICS)))
    out.update({f'skipped/odin/{name}': 1.0 for name in skipped})
    tables = [results_lib.table(
        'OOD detection, in-distribution positive (%)',
        ('set', 'method', 'T', 'ε', 'n_in', 'n_out', 'FPR@95TPR', 'det. error',
         'det. error @TPR95', 'AUROC', 'AUPR-in', 'AUPR-out'), rows)]
    tables.append(results_lib.table(
        'Sets', ('set', 'data', '|D|', 'N_D'),
        [(name, d['source'], d['size'], d['N_D']) for name, d in details.items()]))
    if skipped:
      tables.append(results_lib.table('Skipped sets', ('set', 'reason'), list(skipped.items())))
    results_lib.write_results(
        ctx.workdir, self.key, data_config=ctx.data_config, metrics=out, label=LABEL,
        details={'temperature': temperature, 'epsilon': epsilon, 'holdout': holdout,
                 'max_examples': max_examples, 'sets': details, 'skipped_sets': skipped},
        tables=tables)
    return out
