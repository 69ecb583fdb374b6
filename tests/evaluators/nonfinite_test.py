"""NaN is never scored (issue 11): every evaluator on a fixed-logit fake model whose table has NaN
and ±inf rows, with padded batches; numbers worked out by hand; results.json stays strict."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as sk_metrics

from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import calibration
from sdd_jax.evaluators import corruption
from sdd_jax.evaluators import fgsm
from sdd_jax.evaluators import odin

NAN, INF = np.nan, np.inf
# Codes (pixel (0, 0, 0)) -> logits over 10 classes. Code 0: class 0 at 5 (conf
# e^5 / (e^5 + 9)); 1: all NaN; 2: +inf at class 0; 3: -inf at class 9, class 0 at 5; 4: uniform;
# 5 and above NaN: the zero padding rows (pixel round(255 * mean) = 129) have NaN logits too.
TABLE = np.full((256, 10), NAN, np.float32)
TABLE[:5] = 0.0
TABLE[0, 0] = TABLE[3, 0] = 5.0
TABLE[1] = NAN
TABLE[2, 0] = INF
TABLE[3, 9] = -INF
C0 = np.e ** 5 / (np.e ** 5 + 9)


def _strict(path):
  """Parses `path` refusing NaN/Infinity tokens (what a strict JSON reader does)."""
  def refuse(token):
    raise ValueError(f'non-standard JSON token {token}')
  with open(path, encoding='utf-8') as f:
    return json.load(f, parse_constant=refuse)


def _ctx(fake, tmp_path, codes, labels, batch_size=8, num_devices=8):
  source = fake.array_source(fake.coded_images(codes), labels)
  return fake.ctx(tmp_path, source, batch_size=batch_size, devices=jax.devices()[:num_devices])


# 13 examples, all labelled 0: codes 0 (right) x5, 4 (uniform: a tie, argmax = 0 is right) x2,
# NaN x2, +inf x2, -inf x2. Only the 7 finite rows can be right: top-1 = 7 / 13.
CODES = np.array([0, 1, 2, 3, 0, 0, 4, 1, 2, 3, 0, 0, 4])
LABELS = np.zeros(13, np.int64)


@pytest.mark.parametrize('batch_size, num_devices', [(8, 8), (16, 8), (5, 1)])
def test_accuracy(fake, tmp_path, batch_size, num_devices):
  """Padding: 3 rows (batch 8), 3 (16) and 2 (5): the counts do not change."""
  ctx = _ctx(fake, tmp_path, CODES, LABELS, batch_size, num_devices)
  out = accuracy.Accuracy()(ctx, fake.fixed_logits(TABLE))
  assert out['test/top1'] == pytest.approx(100 * 7 / 13)
  assert out['test/top5'] == pytest.approx(100 * 7 / 13)
  assert out['test/count'] == 13 and out['test/nonfinite'] == 6
  assert out['test/nll'] == np.inf
  # ECE bins: 5 x C0 (0.94, right) and 6 non-finite (conf 1, wrong) in bin 9; 2 x 0.1 in bin 0.
  by_hand = (11 / 13) * abs(5 / 11 - (5 * C0 + 6) / 11) + (2 / 13) * abs(1 - 0.1)
  assert out['test/ece'] == pytest.approx(100 * by_hand, rel=1e-5)


def test_calibration_and_its_strict_results_json(fake, tmp_path):
  out = calibration.Calibration()(_ctx(fake, tmp_path, CODES, LABELS), fake.fixed_logits(TABLE))
  assert out['calibration/nonfinite'] == 6 and out['calibration/count'] == 13
  assert out['calibration/top1'] == pytest.approx(100 * 7 / 13)
  assert out['calibration/confidence'] == pytest.approx(100 * (5 * C0 + 6 + 0.2) / 13, rel=1e-5)
  record = _strict(tmp_path / 'evals/calibration/results.json')
  assert record['metrics']['calibration/nll'] is None  # inf -> null
  assert record['metrics']['calibration/nonfinite'] == 6
  last = [row for row in record['details']['bins'] if row['bin'] == 9][0]
  assert last['count'] == 11 and last['acc'] == pytest.approx(5 / 11)


def test_calibration_new_scores_charge_nonfinite_rows_the_worst(fake, tmp_path):
  """By hand on CODES: 6 non-finite rows (Brier 2, all mass on class 1, ranked first and wrong),
  5 right at C0, 2 right and uniform (0.1)."""
  out = calibration.Calibration()(_ctx(fake, tmp_path, CODES, LABELS), fake.fixed_logits(TABLE))
  brier0 = (1 - C0) ** 2 * (1 + 1 / 9)  # C0 on the label, (1 - C0)/9 on each other class
  assert out['calibration/brier'] == pytest.approx((5 * brier0 + 2 * 0.9 + 6 * 2) / 13, rel=1e-5)
  aurc = (6 + sum(6 / i for i in range(7, 14))) / 13  # risk 1 for the first 6, then 6/i
  optimal = sum(j / (7 + j) for j in range(1, 7)) / 13
  assert out['calibration/aurc'] == pytest.approx(1000 * aurc, rel=1e-6)
  assert out['calibration/eaurc'] == pytest.approx(1000 * (aurc - optimal), rel=1e-6)
  # Equal-mass bins of 2, 2, 2, 1 x 7 (ascending): {.1 .1}, {C0 C0} x 2, C0, then 6 x (1, wrong).
  assert out['calibration/ece_adaptive'] == pytest.approx(100 * (1.8 + 5 * (1 - C0) + 6) / 13,
                                                          rel=1e-5)
  other = 5 * (1 - C0) / 9 + 0.2  # p_k of the finite rows for k != 0, all in bin 0, y_k = 0
  per_class = [(5 * (1 - C0) + (8 - 0.2)) / 13, (other + 6) / 13] + [other / 13] * 8
  assert out['calibration/ece_classwise'] == pytest.approx(100 * np.mean(per_class), rel=1e-5)


def test_fgsm_counts_clean_and_attacked_nonfinite_logits(fake, tmp_path):
  """Pixel (0, 0, 1) >= 250 makes the logits NaN; the input gradient is all ones, so FGSM-pix
  at ε = 10/255 adds 10 to every pixel: 245 becomes 255 (NaN after the attack only)."""
  codes = np.array([0, 0, 0, 0, 0, 4, 4, 0, 0, 0, 0])
  extra = np.array([10, 250, 245, 241, 239, 250, 245, 10, 10, 10, 10])
  images = fake.coded_images(codes, extra=extra)
  ctx = fake.ctx(tmp_path, fake.array_source(images, np.zeros(11)), batch_size=8)
  table = jnp.asarray(TABLE)

  @jax.jit
  def logits_fn(x):
    px = fake.pixels(x)
    logits = table[px[:, 0, 0, 0].astype(jnp.int32) % 10]
    return jnp.where((px[:, 0, 0, 1] >= 250)[:, None], jnp.nan, logits)

  predict = base.Predictors(logits_fn=logits_fn,
                            input_grad_fn=jax.jit(lambda x, y, t: jnp.ones_like(x)))
  section = {'epsilons': (10 / 255,), 'paper_epsilons': (), 'norm_epsilons': ()}
  out = fgsm.Fgsm(section)(ctx, predict)
  key = f'fgsm/pix_{10 / 255:.4g}'
  # Clean NaN: rows 1, 5; attacked NaN: extra + 10 >= 250: rows 1, 2, 3, 5, 6 (241 + 10 = 251).
  assert out['fgsm/count'] == 11 and out['fgsm/nonfinite'] == 5
  assert out['fgsm/clean'] == pytest.approx(100 * 9 / 11)  # codes 0 and 4 are right when finite
  assert out[key] == pytest.approx(100 * 6 / 11)
  record = _strict(tmp_path / 'evals/fgsm/results.json')
  assert record['details']['clean_nonfinite'] == 2
  assert record['details']['attacks'][0]['nonfinite'] == 5


def test_corruption_counts_nonfinite_images(fake, tmp_path):
  labels = np.zeros(10, np.int64)
  ctx = _ctx(fake, tmp_path, np.array([0] * 9 + [1]), labels)  # one NaN clean image
  root = tmp_path / 'CIFAR-100-C'
  root.mkdir()
  # Severity s: the first s rows are NaN (s = 1..5), the rest right: top-1 = 90, 80, ..., 50.
  codes = np.concatenate([np.where(np.arange(10) < s, 1, 0) for s in range(1, 6)])
  np.save(root / 'fog.npy', fake.coded_images(codes))
  np.save(root / 'labels.npy', np.zeros(50, np.uint8))
  out = corruption.Corruption({'path': str(root), 'corruptions': ('fog',)})(
      ctx, fake.fixed_logits(TABLE))
  assert out['corruption/clean'] == pytest.approx(90.0)
  assert out['corruption/fog'] == pytest.approx(70.0)
  assert out['corruption/nonfinite'] == 1 + (1 + 2 + 3 + 4 + 5)
  record = _strict(tmp_path / 'evals/corruption/results.json')
  assert record['details']['nonfinite'] == {'clean': 1, **{f'fog_{s}': s for s in range(1, 6)}}


def test_odin_and_msp_rank_nonfinite_scores_as_the_worst_case(fake, tmp_path):
  # In-distribution: 6 confident (code 0), one NaN, one +inf. OOD: 6 uniform, one NaN, one -inf.
  in_codes = np.array([0, 0, 1, 0, 0, 2, 0, 0])
  ctx = _ctx(fake, tmp_path, in_codes, np.zeros(8, np.int64))
  folder = tmp_path / 'mine' / 'a'
  folder.mkdir(parents=True)
  for i, code in enumerate([4, 4, 1, 4, 4, 3, 4, 4]):
    image = fake.coded_images([code], np.random.default_rng(i))[0]
    Image.fromarray(image).save(folder / f'{i:02d}.png')
  section = {'sets': (f'mine={tmp_path / "mine"}',), 'holdout': 0, 'max_examples': 8,
             'epsilon': 0.0}
  out = odin.Odin(section)(ctx, fake.fixed_logits(TABLE))
  # Worst case by hand: the in-distribution NaNs score below, the OOD ones above, all others:
  # in = 6 x high + 2 x (-100); out = 6 x low + 2 x (+100).
  y = np.r_[np.ones(8), np.zeros(8)]
  s = np.r_[[1.0] * 6, [-100.0] * 2, [0.0] * 6, [100.0] * 2]
  fpr, tpr, _ = sk_metrics.roc_curve(y, s, drop_intermediate=False)
  assert sk_metrics.roc_auc_score(y, s) == 36 / 64
  for method in ('odin', 'msp'):
    assert out[f'{method}/mine/auroc'] == pytest.approx(100 * 36 / 64)
    assert out[f'{method}/mine/fpr95'] == pytest.approx(100.0)
    assert out[f'{method}/mine/detection_error'] == pytest.approx(25.0)  # at TPR .75, FPR .25
    assert out[f'{method}/mine/aupr_in'] == pytest.approx(
        100 * sk_metrics.average_precision_score(y, s))
    assert out[f'{method}/mine/aupr_out'] == pytest.approx(
        100 * sk_metrics.average_precision_score(1 - y, -s))
    assert (out[f'{method}/mine/nonfinite_in'], out[f'{method}/mine/nonfinite_out']) == (2, 2)
  assert np.min(0.5 * (1 - tpr) + 0.5 * fpr) == 0.25
  _strict(tmp_path / 'evals/odin/results.json')
  assert not os.path.exists(tmp_path / 'evals/odin/results.json.tmp')
