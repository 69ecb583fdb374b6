"""`calibration`: 10-bin ECE (right-closed bins), the per-bin table and a reliability diagram,
equal-mass and class-wise ECE, the Brier score, and AURC / E-AURC of max-softmax ranking.

ECE = Σ_m |B_m|/N · |acc(B_m) − conf(B_m)| over M = 10 equal-width bins ((m−1)/M, m/M], with
confidence = max softmax and c = 1.0 in the last bin (Guo et al. 2017; docs/evaluation.md §2). The
raw model, no temperature scaling. Bin sums add up over padded + masked batches
(`accuracy.accumulate_sums`), so nothing depends on the batch size; the equal-mass ECE and AURC
rank every real example on the host (the rows of the same shared pass: one logits pass).

Keys (percent unless said): `calibration/ece`, `calibration/top1`, `calibration/confidence`
(mean max-softmax), `calibration/nll` (nats), `calibration/count` (N), `calibration/nonfinite`
(examples with a NaN or ±inf logit: wrong, confidence 1.0, NLL +inf; see `metrics.py`),
`calibration/ece_adaptive` (10 equal-mass bins, Nixon et al. 2019; §2.4),
`calibration/ece_classwise` (mean over classes of the 10-bin ECE of p_k; Kull et al. 2019; §2.3),
`calibration/brier` (Σ_k (p_k − 1[k = y])², mean over examples, in [0, 2], not percent; Brier
1950; §2.2; a non-finite example scores 2), `calibration/aurc` and `calibration/eaurc` (×1000, as
PS-KD prints them; Geifman et al. 2019; §2.1; a non-finite example ranks as the most confident
and is wrong).
Artefacts in `<workdir>/evals/calibration/`: `reliability.png`, `reliability.json` (per-bin
lower, upper, count, acc, conf) and `results.json` (also the equal-mass bins, the per-class ECE
and the optimal AURC).
"""
import jax
import numpy as np

from sdd_jax.metrics import calibration as calibration_metrics
from sdd_jax.metrics import classification as metrics
from sdd_jax.metrics import plotting
from sdd_jax.metrics import selective
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import results as results_lib

PLOT = 'reliability.png'
LABEL = ('Expected calibration error of the raw model (no temperature scaling): 10 equal-width '
         'bins ((m-1)/10, m/10], confidence = max softmax, c = 1.0 in the last bin '
         '(Guo et al. 2017; docs/evaluation.md §2). ECE in %. Beside it (§2.1-2.4): equal-mass '
         'ECE (10 bins of equal counts, the least confident bins take the remainder, ties share '
         'their mean accuracy; Nixon et al. 2019) and class-wise ECE (mean over classes of the '
         '10-bin ECE of p_k; Kull et al. 2019), in %; the multi-class Brier score (sum over '
         'classes, mean over examples, in [0, 2]; Brier 1950); AURC and E-AURC of max-softmax '
         'ranking x1000 (ties averaged, discrete optimal AURC; Geifman et al. 2019, as PS-KD). '
         'Non-finite logits: wrong, confidence 1, Brier 2, ranked most confident.')

SCORES = (('ece', 'ECE, 10 equal-width bins (%)'), ('ece_adaptive', 'ECE, 10 equal-mass bins (%)'),
          ('ece_classwise', 'class-wise ECE (%)'), ('brier', 'Brier score (0 to 2)'),
          ('aurc', 'AURC (x1000)'), ('eaurc', 'E-AURC (x1000)'), ('top1', 'top-1 (%)'),
          ('confidence', 'mean confidence (%)'), ('nll', 'NLL (nats)'))


def _rows(table):
  return [(f'({row["lower"]:.1f}, {row["upper"]:.1f}]', row['count'], 100 * row['acc'],
           100 * row['conf'], 100 * (row['conf'] - row['acc'])) for row in table]


class Calibration(base.Evaluator):
  name = 'calibration'
  defaults = {'every_epochs': 1}

  def prepare(self, ctx, predict):
    accuracy.request_calibration(ctx, predict)

  def __call__(self, ctx, predict):
    total = accuracy.accumulate_sums(ctx, predict, calibration=True)
    count = float(total['count'])
    ece, table = metrics.ece_from_bin_stats(total['bins'])
    rows = total['rows']
    adaptive, adaptive_table = calibration_metrics.adaptive_ece(
        rows['confidence'], rows['correct'], rows['nonfinite'])
    classwise, per_class = calibration_metrics.classwise_ece_from_bin_stats(total['classwise'])
    selection = selective.aurc(rows['confidence'], rows['correct'], rows['nonfinite'])
    out = {'calibration/ece': 100 * ece,
           'calibration/top1': 100 * float(total['top1']) / count,
           'calibration/confidence': 100 * float(np.sum(total['bins']['confidence_sum'])) / count,
           'calibration/nll': float(total['nll']) / count,
           'calibration/count': count,
           'calibration/nonfinite': float(total['nonfinite']),
           'calibration/ece_adaptive': 100 * adaptive,
           'calibration/ece_classwise': 100 * classwise,
           'calibration/brier': float(total['brier']) / count,
           'calibration/aurc': 1000 * selection['aurc'],
           'calibration/eaurc': 1000 * selection['eaurc']}
    directory = ctx.artefact_dir(self.key)
    if jax.process_index() == 0:
      plotting.reliability_diagram(table, ece, int(round(count)), directory / PLOT)
    adaptive_rows = [(f'[{row["lower"]:.4f}, {row["upper"]:.4f}]', row['count'],
                      100 * row['acc'], 100 * row['conf'], 100 * (row['conf'] - row['acc']))
                     for row in adaptive_table]
    columns = ('bin', 'count', 'accuracy %', 'confidence %', 'gap (conf - acc) %')
    results_lib.write_results(
        ctx.workdir, self.key, data_config=ctx.data_config, metrics=out, label=LABEL,
        details={'num_bins': 10, 'n': int(round(count)), 'ece': ece, 'bins': table,
                 'ece_adaptive': adaptive, 'adaptive_bins': adaptive_table,
                 'ece_classwise': classwise, 'ece_per_class': per_class.tolist(),
                 'brier': out['calibration/brier'], 'aurc': selection},
        tables=[results_lib.table('Scores', ('metric', 'value'), [
                    (name, out[f'calibration/{key}']) for key, name in SCORES]),
                results_lib.table('Non-empty bins', columns, _rows(table)),
                results_lib.table('Equal-mass bins (confidence range)', columns, adaptive_rows)],
        plots=[PLOT])
    return out
