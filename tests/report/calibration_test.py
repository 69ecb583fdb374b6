"""The report's calibration tables and the comparison one sweep gives (CE and SD-Dropout over
two seeds): synthetic workdirs with the agreed keys of the calibration and temperature
evaluators, tables by hand, bold by Welch's t-test computed in `cells_test.welch_p`."""
import json
import os

import pytest

from sdd_jax import report
from sdd_jax.report import calibration as report_calibration
from tests.report.cells_test import welch_p

SDD = {'weight': 1.0, 'temperature': 3.0, 'rate': 0.5, 'direction': 'both', 'num_samples': 2,
       'position': 4}
# Per arm, per key: the values of seeds 0 and 1.
CE = {'test/top1': (70.0, 72.0), 'test/top5': (90.0, 91.0),
      'calibration/ece': (10.0, 12.0), 'calibration/nll': (1.10, 1.12),
      'calibration/ece_adaptive': (9.0, 11.0), 'calibration/ece_classwise': (0.5, 0.7),
      'calibration/brier': (0.40, 0.42), 'calibration/aurc': (80.0, 84.0),
      'calibration/eaurc': (30.0, 32.0),
      'temperature/t_star': (1.5, 1.7), 'temperature/ece_before': (10.0, 12.0),
      'temperature/ece_after': (2.0, 3.0), 'temperature/nll_before': (1.10, 1.12),
      'temperature/nll_after': (0.90, 0.92)}
SD = {'test/top1': (71.0, 72.0), 'test/top5': (90.5, 91.5),
      'calibration/ece': (20.0, 22.0), 'calibration/nll': (1.50, 1.52),
      'calibration/ece_adaptive': (19.0, 21.0), 'calibration/ece_classwise': (0.9, 1.1),
      'calibration/brier': (0.44, 0.46), 'calibration/aurc': (78.0, 80.0),
      'calibration/eaurc': (29.0, 31.0),
      'temperature/t_star': (0.6, 0.7), 'temperature/ece_before': (20.0, 22.0),
      'temperature/ece_after': (2.2, 2.6), 'temperature/nll_before': (1.50, 1.52),
      'temperature/nll_after': (1.20, 1.22)}


def write_run(root, name, *, seed, methods, values, fit='cross_fit'):
  """A workdir as train.py and evaluate.py leave it: test/* in summary.json, the rest in
  evals/<evaluator>/results.json."""
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  config = {'seed': seed, 'data': {'source': 'tfds', 'name': 'cifar100'},
            'model': {'name': 'resnet18_cifar', 'head_hidden': [], 'kwargs': {'width': 16}},
            'methods': methods}
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config, f)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({k: v for k, v in values.items() if k.startswith('test/')}, f)
  for evaluator in ('calibration', 'temperature'):
    metrics = {k: v for k, v in values.items() if k.startswith(evaluator + '/')}
    if metrics:
      os.makedirs(os.path.join(workdir, 'evals', evaluator))
      record = {'evaluator': evaluator, 'metrics': metrics}
      if evaluator == 'temperature':
        record['details'] = {'fit': fit}
      with open(os.path.join(workdir, 'evals', evaluator, 'results.json'), 'w') as f:
        json.dump(record, f)


@pytest.fixture(name='root')
def fixture_root(tmp_path):
  """What `sweep --sweep "arg=ce," --sweep "seed=0,1"` makes, plus an older CS-KD run with
  SD-Dropout at 0.1 and none of the new keys."""
  root = str(tmp_path / 'runs')
  for seed in (0, 1):
    write_run(root, f'arg=ce,seed={seed}', seed=seed, methods={},
              values={k: v[seed] for k, v in CE.items()})
    write_run(root, f'arg=,seed={seed}', seed=seed, methods={'sd_dropout': SDD},
              values={k: v[seed] for k, v in SD.items()})
  write_run(root, 'cs_kd', seed=0, methods={'cs_kd': {}, 'sd_dropout': dict(SDD, weight=0.1)},
            values={'test/top1': 73.0})
  return root


def test_the_bold_cells_are_the_ones_welch_finds():
  """The bold of the tables below, derived independently: the best cell is bold only where
  its two-sided Welch p against every other cell of the comparison is < 0.05."""
  p = lambda key_a, arm_a, key_b, arm_b: welch_p(arm_a[key_a], arm_b[key_b])
  assert p('calibration/ece', CE, 'calibration/ece', SD) < 0.05  # Table 2: CE's ECE bold
  assert p('calibration/nll', CE, 'calibration/nll', SD) < 0.05
  assert p('calibration/ece_adaptive', CE, 'calibration/ece_adaptive', SD) < 0.05
  for key in ('ece_classwise', 'brier', 'aurc', 'eaurc'):  # within noise: not bold
    assert p(f'calibration/{key}', CE, f'calibration/{key}', SD) > 0.05
  # After TS: SD-Dropout + TS (2.4) against CE + TS (2.5) is noise; CE + TS has the best NLL,
  # beyond noise against each of the other three.
  assert p('temperature/ece_after', SD, 'temperature/ece_after', CE) > 0.05
  for key, arm in (('nll_before', CE), ('nll_before', SD), ('nll_after', SD)):
    assert p('temperature/nll_after', CE, f'temperature/{key}', arm) < 0.05
  assert p('test/top5', CE, 'test/top5', SD) > 0.05


TABLE2 = """\
| Data set | Method | ECE % Base | ECE % +SD-Dropout | NLL Base | NLL +SD-Dropout |
|---|---|---|---|---|---|
| CIFAR-100 | Cross-Entropy | **11.00 ± 1.41** (n=2) | 21.00 ± 1.41 (+10.00) (λ=1) (n=2) | \
**1.11 ± 0.01** (n=2) | 1.51 ± 0.01 (+0.40) (λ=1) (n=2) |"""
SCORES = """\
| Data set | Method | adaptive ECE % Base | adaptive ECE % +SD-Dropout | class-wise ECE % Base | \
class-wise ECE % +SD-Dropout | Brier Base | Brier +SD-Dropout | AURC ×1000 Base | \
AURC ×1000 +SD-Dropout | E-AURC ×1000 Base | E-AURC ×1000 +SD-Dropout |
|---|---|---|---|---|---|---|---|---|---|---|---|
| CIFAR-100 | Cross-Entropy | **10.00 ± 1.41** (n=2) | 20.00 ± 1.41 (+10.00) (λ=1) (n=2) | \
0.60 ± 0.14 (n=2) | 1.00 ± 0.14 (+0.40) (λ=1) (n=2) | 0.41 ± 0.01 (n=2) | \
0.45 ± 0.01 (+0.04) (λ=1) (n=2) | 82.00 ± 2.83 (n=2) | 79.00 ± 1.41 (-3.00) (λ=1) (n=2) | \
31.00 ± 1.41 (n=2) | 30.00 ± 1.41 (-1.00) (λ=1) (n=2) |"""
# ECE: CE 11, CE + TS mean(2, 3) = 2.5 ± 0.71, SD-Dropout 21, + TS mean(2.2, 2.6) = 2.4 ± 0.28;
# NLL: 1.11, 0.91, 1.51, 1.21 (each ± 0.01); T*: mean(1.5, 1.7) = 1.6 ± 0.14, 0.65 ± 0.07.
SCALED = """\
| Data set | Method | ECE % Base | ECE % Base + TS | ECE % +SD-Dropout | ECE % +SD-Dropout + TS | \
NLL Base | NLL Base + TS | NLL +SD-Dropout | NLL +SD-Dropout + TS | T* Base | T* +SD-Dropout |
|---|---|---|---|---|---|---|---|---|---|---|---|
| CIFAR-100 | Cross-Entropy | 11.00 ± 1.41 (n=2) | 2.50 ± 0.71 (n=2) | \
21.00 ± 1.41 (λ=1) (n=2) | 2.40 ± 0.28 (λ=1) (n=2) | 1.11 ± 0.01 (n=2) | \
**0.91 ± 0.01** (n=2) | 1.51 ± 0.01 (λ=1) (n=2) | 1.21 ± 0.01 (λ=1) (n=2) | \
1.60 ± 0.14 (n=2) | 0.65 ± 0.07 (λ=1) (n=2) |"""
# Table 1 states each +SD-Dropout cell's weight: 1 alone (row Cross-Entropy), 0.1 beside CS-KD.
TABLE1 = """\
| Method | CIFAR-100 Base | CIFAR-100 +SD-Dropout |
|---|---|---|
| Cross-Entropy | 71.00 ± 1.41 (n=2) | 71.50 ± 0.71 (+0.50) (λ=1) (n=2) |
| CS-KD | – | 73.00 (λ=0.1) (n=1) |"""
TOP5 = """\
| Cross-Entropy | 90.50 ± 0.71 (n=2) | 91.00 ± 0.71 (+0.50) (λ=1) (n=2) |"""


def test_one_sweeps_comparison_in_the_report(root, tmp_path):
  out = str(tmp_path / 'report.md')
  assert report.main([root, '--out', out]) == 0
  text = open(out, encoding='utf-8').read()
  assert ('### Calibration (Table 2; `calibration/ece`, `calibration/nll`)\n\n'
          + TABLE2 + '\n') in text
  assert ('### Selective prediction and proper scores (`calibration/ece_adaptive`, '
          '`calibration/ece_classwise`, `calibration/brier`, `calibration/aurc`, '
          '`calibration/eaurc`)\n\n' + SCORES + '\n') in text
  assert ('### Calibration after temperature scaling (`temperature/...`; T* fitted on: '
          'cross_fit)\n\n' + SCALED + '\n\n' + report_calibration.TS_NOTE) in text
  assert '\n' + TABLE1 + '\n' in text
  assert '## Table 1, top-5 accuracy % (`test/top5`)' in text and '\n' + TOP5 in text
  assert "(λ=w): SD-Dropout's weight in the runs of that cell" in text
  assert 'Sensitivity' not in text  # CE and one λ at one width: no study
  assert 'Per-seed values' not in text


def test_old_workdirs_without_the_new_keys_still_report(tmp_path):
  root = str(tmp_path / 'runs')
  for seed in (0, 1):
    old = {k: v[seed] for k, v in CE.items() if k in ('test/top1', 'calibration/ece',
                                                      'calibration/nll')}
    write_run(root, f'ce{seed}', seed=seed, methods={}, values=old)
  text = report.render(report.load_runs([root]), str(tmp_path))
  assert '### Calibration (Table 2' in text
  assert 'Selective prediction' not in text and 'temperature scaling' not in text
  # Some scores only: only their columns.
  write_run(root, 'sdd', seed=0, methods={'sd_dropout': SDD},
            values={'test/top1': 71.0, 'calibration/brier': 0.45})
  text = report.render(report.load_runs([root]), str(tmp_path))
  assert '### Selective prediction and proper scores (`calibration/brier`)' in text
  assert ('| CIFAR-100 | Cross-Entropy | – | 0.45 (λ=1) (n=1) |') in text
