"""`calibration`: 10-bin ECE (right-closed bins), the per-bin table and a reliability diagram.

ECE = Σ_m |B_m|/N · |acc(B_m) − conf(B_m)| over M = 10 equal-width bins ((m−1)/M, m/M], with
confidence = max softmax and c = 1.0 in the last bin (Guo et al. 2017; docs/evaluation.md §2). The
raw model, no temperature scaling. Bin sums add up over padded + masked batches
(`accuracy.accumulate_sums`), so nothing depends on the batch size.

Keys (percent unless said): `calibration/ece`, `calibration/top1`, `calibration/confidence`
(mean max-softmax), `calibration/nll` (nats), `calibration/count` (N), `calibration/nonfinite`
(examples with a NaN or ±inf logit: wrong, confidence 1.0, NLL +inf; see `metrics.py`).
Artefacts in `<workdir>/evals/calibration/`: `reliability.png`, `reliability.json` (per-bin
lower, upper, count, acc, conf) and `results.json`.
"""
import jax
import numpy as np

from sdd_jax.metrics import classification as metrics
from sdd_jax.metrics import plotting
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import results as results_lib

PLOT = 'reliability.png'
LABEL = ('Expected calibration error of the raw model (no temperature scaling): 10 equal-width '
         'bins ((m-1)/10, m/10], confidence = max softmax, c = 1.0 in the last bin '
         '(Guo et al. 2017; docs/evaluation.md §2). ECE in %.')


class Calibration(base.Evaluator):
  name = 'calibration'
  defaults = {'every_epochs': 1}

  def __call__(self, ctx, predict):
    total = accuracy.accumulate_sums(ctx, predict)
    count = float(total['count'])
    ece, table = metrics.ece_from_bin_stats(total['bins'])
    out = {'calibration/ece': 100 * ece,
           'calibration/top1': 100 * float(total['top1']) / count,
           'calibration/confidence': 100 * float(np.sum(total['bins']['confidence_sum'])) / count,
           'calibration/nll': float(total['nll']) / count,
           'calibration/count': count,
           'calibration/nonfinite': float(total['nonfinite'])}
    directory = ctx.artefact_dir(self.key)
    if jax.process_index() == 0:
      plotting.reliability_diagram(table, ece, int(round(count)), directory / PLOT)
    rows = [(f'({row["lower"]:.1f}, {row["upper"]:.1f}]', row['count'], 100 * row['acc'],
             100 * row['conf'], 100 * (row['conf'] - row['acc'])) for row in table]
    results_lib.write_results(
        ctx.workdir, self.key, data_config=ctx.data_config, metrics=out, label=LABEL,
        details={'num_bins': 10, 'n': int(round(count)), 'ece': ece, 'bins': table},
        tables=[results_lib.table('Non-empty bins', ('bin', 'count', 'accuracy %',
                                                     'confidence %', 'gap (conf - acc) %'),
                                  rows)],
        plots=[PLOT])
    return out
