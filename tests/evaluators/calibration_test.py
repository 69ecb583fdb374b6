"""`calibration`: spec vectors E1 and E3 end to end through a fixed-logit fake model, the per-bin
table, the reliability PNG + JSON, and independence from the batch size and device count."""
import json

import jax
import numpy as np
import pytest
from PIL import Image

from sdd_jax.evaluators import calibration

E1_CONF = [0.95, 0.92, 0.85, 0.81, 0.66, 0.62, 0.55, 0.45, 0.35, 0.28]
E1_CORRECT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1]
E1_BINS = {2: (1, 1.0, 0.28), 3: (1, 0.0, 0.35), 4: (1, 0.0, 0.45), 5: (1, 1.0, 0.55),
           6: (2, 0.5, 0.64), 8: (2, 0.5, 0.83), 9: (2, 1.0, 0.935)}


def _e1(fake):
  """E1's end-to-end form: K = 4, row i has c_i at class i mod 4 and (1 − c_i)/3 elsewhere."""
  conf = np.asarray(E1_CONF)
  classes = np.arange(10) % 4
  probs = np.repeat(((1 - conf) / 3)[:, None], 4, axis=1)
  probs[np.arange(10), classes] = conf
  labels = np.where(np.asarray(E1_CORRECT) == 1, classes, (classes + 1) % 4)
  config = fake.data_config(num_classes=4)
  source = fake.array_source(fake.coded_images(np.arange(10)), labels, 4)
  return config, source, fake.fixed_logits(np.log(probs), config)


@pytest.mark.parametrize('batch_size, num_devices', [(8, 8), (24, 8), (3, 1)])
def test_e1_end_to_end(fake, tmp_path, batch_size, num_devices):
  config, source, predict = _e1(fake)
  ctx = fake.ctx(tmp_path, source, config, batch_size, jax.devices()[:num_devices])
  out = calibration.Calibration()(ctx, predict)
  assert out['calibration/ece'] == pytest.approx(30.4, abs=1e-4)
  assert out['calibration/top1'] == pytest.approx(60.0)
  assert out['calibration/confidence'] == pytest.approx(64.4, abs=1e-4)
  assert out['calibration/count'] == 10

  record = json.loads((tmp_path / 'evals/calibration/results.json').read_text())
  assert record['metrics'] == pytest.approx(out)
  assert record['normalisation']['mean'] == list(fake.MEAN)
  assert record['normalisation']['std'] == list(fake.STD)
  bins = {row['bin']: row for row in record['details']['bins']}
  assert sorted(bins) == sorted(E1_BINS)  # bins 0, 1 and 7 are empty and left out
  for m, (count, acc, conf) in E1_BINS.items():
    assert (bins[m]['count'], bins[m]['acc']) == (count, pytest.approx(acc))
    assert bins[m]['conf'] == pytest.approx(conf, abs=1e-6)
    assert (bins[m]['lower'], bins[m]['upper']) == pytest.approx((m / 10, (m + 1) / 10))

  png = tmp_path / 'evals/calibration/reliability.png'
  assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  with Image.open(png) as image:
    assert image.size[0] > 100 and image.size[1] > 100
  diagram = json.loads((tmp_path / 'evals/calibration/reliability.json').read_text())
  assert diagram['n'] == 10 and diagram['ece'] == pytest.approx(0.304, abs=1e-6)
  assert len(diagram['bins']) == 7


def test_e3_edge_conventions_give_20_00(fake, tmp_path):
  """E3: c = [1.0, 1.0, 0.95, 0.5, 0.45], correct [1, 0, 1, 1, 0] -> ECE 0.2000 (right-closed
  bins: 1.0 in the last bin, 0.5 in (0.4, 0.5]); numpy-histogram bins would give 0.38."""
  logits = [[100., 0., 0.], [100., 0., 0.], np.log([.95, .025, .025]), [0., 0., -1e4],
            np.log([.45, .35, .2])]
  labels = [0, 1, 0, 0, 1]
  config = fake.data_config(num_classes=3)
  source = fake.array_source(fake.coded_images(np.arange(5)), labels, 3)
  ctx = fake.ctx(tmp_path, source, config, batch_size=8)
  out = calibration.Calibration()(ctx, fake.fixed_logits(logits, config))
  assert out['calibration/ece'] == pytest.approx(20.0, abs=1e-4)
  table = json.loads((tmp_path / 'evals/calibration/results.json').read_text())['details']['bins']
  assert [(row['bin'], row['count']) for row in table] == [(4, 2), (9, 3)]


def test_defaults_run_every_epoch():
  assert calibration.Calibration().every_epochs == 1
  assert calibration.Calibration({'every_epochs': 0}).every_epochs == 0


@pytest.mark.parametrize('batch_size, num_devices', [(8, 8), (3, 1)])
def test_e1_selective_and_proper_scores_end_to_end(fake, tmp_path, batch_size, num_devices):
  """The new keys on E1 (padded batches of 8 over 8 devices, and of 3 on 1), by hand: AURC from
  the ranked correctness [1, 1, 1, 0, 1, 0, 1, 0, 0, 1]; equal-mass ECE with 10 bins of one is
  mean |a - c|; Brier and class-wise ECE from the probabilities in NumPy."""
  config, source, predict = _e1(fake)
  ctx = fake.ctx(tmp_path, source, config, batch_size, jax.devices()[:num_devices])
  out = calibration.Calibration()(ctx, predict)
  risks = [0, 0, 0, 1 / 4, 1 / 5, 2 / 6, 2 / 7, 3 / 8, 4 / 9, 4 / 10]
  optimal = (1 / 7 + 2 / 8 + 3 / 9 + 4 / 10) / 10  # 4 wrong of 10: PS-KD's discrete sum
  assert out['calibration/aurc'] == pytest.approx(1000 * np.mean(risks), abs=1e-4)
  assert out['calibration/eaurc'] == pytest.approx(1000 * (np.mean(risks) - optimal), abs=1e-4)
  assert out['calibration/ece_adaptive'] == pytest.approx(40.2, abs=1e-4)
  conf = np.asarray(E1_CONF)
  classes = np.arange(10) % 4
  probs = np.repeat(((1 - conf) / 3)[:, None], 4, axis=1)
  probs[np.arange(10), classes] = conf
  labels = np.where(np.asarray(E1_CORRECT) == 1, classes, (classes + 1) % 4)
  targets = np.eye(4)[labels]
  assert out['calibration/brier'] == pytest.approx(np.mean(np.sum((probs - targets) ** 2, 1)),
                                                   abs=1e-6)
  per_class = []
  for k in range(4):  # every p_k here is off the bin edges: ceil(10 p) - 1 is safe
    bins = np.ceil(probs[:, k] * 10).astype(int) - 1
    per_class.append(sum(abs(targets[bins == m, k].sum() - probs[bins == m, k].sum())
                         for m in set(bins)) / 10)
  assert out['calibration/ece_classwise'] == pytest.approx(100 * np.mean(per_class), abs=1e-4)
  record = json.loads((tmp_path / 'evals/calibration/results.json').read_text())
  assert [row['count'] for row in record['details']['adaptive_bins']] == [1] * 10
  assert record['details']['aurc']['optimal_aurc'] == pytest.approx(optimal)
  scores = dict(record['tables'][0]['rows'])
  assert record['tables'][0]['title'] == 'Scores'
  assert scores['AURC (x1000)'] == pytest.approx(out['calibration/aurc'])
  assert scores['Brier score (0 to 2)'] == pytest.approx(out['calibration/brier'])
