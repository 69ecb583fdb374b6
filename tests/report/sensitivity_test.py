"""sdd_jax.report.sensitivity: the D x weight tables and figure over fake workdirs with
hand-worked numbers."""
import json
import os

import pytest

from sdd_jax import report
from sdd_jax.report import runs as report_runs
from sdd_jax.report import sensitivity as report_sensitivity

SDD = dict(weight=1.0, temperature=3.0, rate=0.5, direction='both', num_samples=2, position=4)
DATA = {'source': 'npz', 'path': 'cifar10_5k', 'name': 'cifar10'}


def write_run(root, name, *, seed, width, summary, methods=None, bins=None, data=DATA):
  """A finished workdir; `bins` (count, conf) pairs go to evals/calibration/results.json only,
  as the calibration evaluator writes them."""
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  model = {'name': 'resnet18_cifar', 'head_hidden': [], 'kwargs': {}}
  if width is not None:
    model['kwargs']['width'] = width
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'seed': seed, 'data': data, 'model': model, 'methods': methods or {}}, f)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({'steps': 10, **summary}, f)
  if bins is not None:
    os.makedirs(os.path.join(workdir, 'evals', 'calibration'))
    table = [{'bin': i, 'lower': i / 10, 'upper': (i + 1) / 10, 'count': n, 'acc': 0.5,
              'conf': conf} for i, (n, conf) in enumerate(bins)]
    with open(os.path.join(workdir, 'evals', 'calibration', 'results.json'), 'w') as f:
      json.dump({'evaluator': 'calibration', 'metrics': {}, 'details': {'bins': table}}, f)


def numbers(top1, nll, ece, confidence=None):
  out = {'test/top1': top1, 'test/nll': nll, 'test/ece': ece}
  if confidence is not None:
    out['calibration/confidence'] = confidence
  return out


@pytest.fixture(name='root')
def fixture_root(tmp_path):
  root = str(tmp_path / 'runs')
  sdd = lambda weight: {'sd_dropout': dict(SDD, weight=weight)}
  for seed, values in enumerate([(50, 1.4, 4, 55), (52, 1.5, 5, 57), (54, 1.6, 6, 59)]):
    write_run(root, f'ce8/s{seed}', seed=seed, width=8, summary=numbers(*values))
  # λ = 0.25 seed 0 has no confidence key: (30 · 0.4 + 10 · 0.8) / 40 = 0.5 from its bins.
  for seed, values in enumerate([(53, 1.3, 2, None), (53, 1.4, 3, 52), (56, 1.5, 4, 54)]):
    write_run(root, f'q8/s{seed}', seed=seed, width=8, summary=numbers(*values),
              methods=sdd(0.25), bins=[(30, 0.4), (10, 0.8)] if seed == 0 else None)
  for seed, values in enumerate([(40, 1.9, 20, 20), (41, 2.0, 21, 21), (42, 2.1, 22, 22)]):
    write_run(root, f'w8/s{seed}', seed=seed, width=8, summary=numbers(*values), methods=sdd(1.0))
  for seed, values in enumerate([(60, 1.2, 8, 68), (61, 1.2, 9, 70)]):
    write_run(root, f'ce16/s{seed}', seed=seed, width=16, summary=numbers(*values))
  write_run(root, 'w16/s0', seed=0, width=16, summary=numbers(62, 1.1, 3), methods=sdd(1.0))
  # Not the study's: another rate, another method, no width, a data set with one cell.
  write_run(root, 'rate03', seed=0, width=8, summary=numbers(99, 0.1, 0.1, 99),
            methods={'sd_dropout': dict(SDD, rate=0.3, weight=0.5)})
  write_run(root, 'cskd', seed=0, width=8, summary=numbers(98, 0.1, 0.1, 99),
            methods={'cs_kd': {'weight': 1.0}})
  write_run(root, 'nowidth', seed=0, width=None, summary=numbers(97, 0.1, 0.1, 99))
  write_run(root, 'other', seed=0, width=8, summary=numbers(96, 0.1, 0.1, 99),
            data=dict(DATA, path='elsewhere'))
  return root


# Means and sample stds (ddof=1): CE at D = 64: top-1 (50, 52, 54) -> 52 ± 2; λ = 0.25: (53, 53,
# 56) -> 54, squared deviations 1 + 1 + 4 = 6, / 2 = 3, sqrt 1.73; CE at D = 128: (60, 61) ->
# 60.5 ± sqrt(0.5) = 0.71. Most cells have 3 seeds, so 2 and 1 are marked. No bold: the best of
# each D = 64 row is within noise of CE (Welch, two-sided: top-1 t = 2 / sqrt(4/3 + 3/3) = 1.31;
# NLL t = 0.1 / sqrt(0.02/3) = 1.22; ECE t = 2 / sqrt(2/3) = 2.45 on 4 degrees of freedom,
# p = 0.07), and D = 128 has one-seed cells.
TOP1 = """\
| D | CE | λ = 0.25 | λ = 1 |
|---|---|---|---|
| 64 | 52.00 ± 2.00 | 54.00 ± 1.73 | 41.00 ± 1.00 |
| 128 | 60.50 ± 0.71 (n=2) | – | 62.00 (n=1) |"""
NLL = """\
| D | CE | λ = 0.25 | λ = 1 |
|---|---|---|---|
| 64 | 1.50 ± 0.10 | 1.40 ± 0.10 | 2.00 ± 0.10 |
| 128 | 1.20 ± 0.00 (n=2) | – | 1.10 (n=1) |"""
ECE = """\
| D | CE | λ = 0.25 | λ = 1 |
|---|---|---|---|
| 64 | 5.00 ± 1.00 | 3.00 ± 1.00 | 21.00 ± 1.00 |
| 128 | 8.50 ± 0.71 (n=2) | – | 3.00 (n=1) |"""
# Confidence: λ = 0.25 is (50, 52, 54); D = 128 λ = 1 has neither the key nor bins. No bold.
CONFIDENCE = """\
| D | CE | λ = 0.25 | λ = 1 |
|---|---|---|---|
| 64 | 57.00 ± 2.00 | 52.00 ± 2.00 | 21.00 ± 1.00 |
| 128 | 69.00 ± 1.41 (n=2) | – | – |"""


def test_tables_exact(root):
  groups = report_runs.group_seeds(report_runs.load_runs([root]))
  study = report_sensitivity.study(groups)
  assert list(study) == [('npz:cifar10_5k', 'resnet18_cifar')]
  cells = study[('npz:cifar10_5k', 'resnet18_cifar')]
  got = [report_sensitivity.table(cells, value, better)
         for _, value, better in report_sensitivity.METRICS[:report_sensitivity.OPTIONAL]]
  assert got == [TOP1, NLL, ECE, CONFIDENCE]


def test_temperature_scaled_tables_only_where_runs_have_them(root, tmp_path):
  """The fixture's runs have no `temperature` results: no TS tables. Two weights at one D
  with TS results in evals/temperature/results.json: ECE and NLL after TS and T*, by hand."""
  groups = report_runs.group_seeds(report_runs.load_runs([root]))
  text = '\n'.join(report_sensitivity.section(groups, str(tmp_path / 'a')))
  assert '### ECE % after temperature scaling' not in text and '### T*' not in text
  runs = str(tmp_path / 'ts')
  sdd = lambda weight: {'sd_dropout': dict(SDD, weight=weight)}
  # (ece_after, nll_after, t_star) per seed
  values = {'ce': [(1.0, 1.50, 1.1), (3.0, 1.52, 1.3)], 'w1': [(2.0, 1.70, 0.5), (2.0, 1.74, 0.7)],
            'w25': [(4.0, 1.60, 0.8)]}
  for name, per_seed in values.items():
    methods = {'ce': None, 'w1': sdd(1.0), 'w25': sdd(0.25)}[name]
    for seed, (ece, nll, t) in enumerate(per_seed):
      write_run(runs, f'{name}/s{seed}', seed=seed, width=8, summary=numbers(50, 1, 1),
                methods=methods)
      folder = os.path.join(runs, name, f's{seed}', 'evals', 'temperature')
      os.makedirs(folder)
      with open(os.path.join(folder, 'results.json'), 'w') as f:
        json.dump({'evaluator': 'temperature', 'metrics': {
            'temperature/ece_after': ece, 'temperature/nll_after': nll,
            'temperature/t_star': t}, 'details': {'fit': 'cross_fit'}}, f)
  groups = report_runs.group_seeds(report_runs.load_runs([runs]))
  text = '\n'.join(report_sensitivity.section(groups, str(tmp_path / 'b')))
  # CE ECE (1, 3) -> 2 ± 1.41; λ = 1 (2, 2) -> 2 ± 0; NLL CE 1.51 ± 0.01, λ = 1 1.72 ± 0.03;
  # T* CE 1.2 ± 0.14, λ = 1 0.6 ± 0.14; λ = 0.25 one seed; fewer than 3 seeds are marked. No
  # bold: the best must beat every other cell by Welch's test, and λ = 0.25 has one seed.
  assert ('### ECE % after temperature scaling\n\n| D | CE | λ = 0.25 | λ = 1 |\n'
          '|---|---|---|---|\n| 64 | 2.00 ± 1.41 (n=2) | 4.00 (n=1) | 2.00 ± 0.00 (n=2) |') in text
  assert ('### NLL after temperature scaling\n\n| D | CE | λ = 0.25 | λ = 1 |\n'
          '|---|---|---|---|\n| 64 | 1.51 ± 0.01 (n=2) | 1.60 (n=1) | 1.72 ± 0.03 (n=2) |') in text
  assert ('### T* (fitted temperature)\n\n| D | CE | λ = 0.25 | λ = 1 |\n'
          '|---|---|---|---|\n| 64 | 1.20 ± 0.14 (n=2) | 0.80 (n=1) | 0.60 ± 0.14 (n=2) |') in text


def test_mean_confidence_from_the_calibration_bins():
  def run(summary, bins):
    evals = {'calibration': {'details': {'bins': [{'count': n, 'conf': c} for n, c in bins]}}}
    return report_runs.Run(workdir='w', config={}, summary=summary, evals=evals)
  # (5 · 0.15 + 15 · 0.55 + 0 · 0.95 + 30 · 0.9) / 50 = (0.75 + 8.25 + 27) / 50 = 0.72
  assert report_sensitivity.mean_confidence(run({}, [(5, 0.15), (15, 0.55), (0, 0.95),
                                                     (30, 0.9)])) == pytest.approx(72.0)
  assert report_sensitivity.mean_confidence(
      run({'calibration/confidence': 61.5}, [(1, 0.1)])) == 61.5
  assert report_sensitivity.mean_confidence(run({}, [(0, 0.5)])) is None
  assert report_sensitivity.mean_confidence(run({}, [])) is None


def test_pooled_dimension():
  def dim(name, kwargs):
    return report_sensitivity.pooled_dimension(
        report_runs.Run(workdir='w', config={'model': {'name': name, 'kwargs': kwargs}},
                        summary={}, evals={}))
  assert [dim('resnet18_cifar', {'width': w}) for w in (8, 16, 32, 64)] == [64, 128, 256, 512]
  assert dim('resnet50_cifar', {'width': 16}) == 512 and dim('resnet152', {'width': 64}) == 2048
  assert dim('resnet18_cifar', {}) is None and dim('densenet121', {'width': 8}) is None


def test_figure_series(root):
  groups = report_runs.group_seeds(report_runs.load_runs([root]))
  cells = report_sensitivity.study(groups)[('npz:cifar10_5k', 'resnet18_cifar')]
  ece = report_sensitivity.series(cells, report_sensitivity.METRICS[2][1])
  assert list(ece) == [64, 128]
  assert ece[64][0] == [0.0, 0.25, 1.0] and ece[64][1] == pytest.approx([5, 3, 21])
  assert ece[64][2] == pytest.approx([1, 1, 1])
  assert ece[128] == ([0.0, 1.0], pytest.approx([8.5, 3]), pytest.approx([0.5 ** 0.5, 0]))
  fig = report_sensitivity.create_figure(cells, 'title')
  ece_axis, top1_axis = fig.axes
  assert [t.get_text() for t in ece_axis.get_legend().get_texts()] == ['D = 64', 'D = 128']
  assert ece_axis.containers[0].lines[0].get_xydata().tolist() == [[0, 5], [0.25, 3], [1, 21]]
  assert top1_axis.containers[1].lines[0].get_xydata().tolist() == [[0, 60.5], [1, 62]]


def test_report_cli_renders_the_section_and_the_plot(root, tmp_path):
  out = tmp_path / 'out' / 'tables.md'
  assert report.main([root, '--out', str(out)]) == 0
  text = out.read_text()
  heading = '## Sensitivity: SD-Dropout weight λ against pooled dimension D (npz:cifar10_5k'
  assert text.count(heading) == 1
  assert TOP1 in text and ECE in text and CONFIDENCE in text
  assert '![ECE and top-1 against λ' in text and '(sensitivity.png)' in text
  assert (tmp_path / 'out' / 'sensitivity.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_no_section_without_a_study(tmp_path):
  root = str(tmp_path / 'runs')
  write_run(root, 'ce', seed=0, width=8, summary=numbers(50, 1, 1))
  write_run(root, 'ce1', seed=1, width=8, summary=numbers(51, 1, 1))
  groups = report_runs.group_seeds(report_runs.load_runs([root]))
  assert report_sensitivity.section(groups, str(tmp_path)) == []
  assert not os.path.exists(tmp_path / 'sensitivity.png')


def test_no_section_for_a_seed_sweep_of_the_two_arms(tmp_path):
  """CE and SD-Dropout at one weight and one D over seeds (`--sweep "arg=ce,"`) compare two
  arms, which Table 1 shows; the study needs two D or two weights."""
  root = str(tmp_path / 'runs')
  sdd = lambda weight: {'sd_dropout': dict(SDD, weight=weight)}
  for seed in (0, 1):
    write_run(root, f'ce/s{seed}', seed=seed, width=8, summary=numbers(50, 1, 1))
    write_run(root, f'sdd/s{seed}', seed=seed, width=8, summary=numbers(51, 1, 1),
              methods=sdd(1.0))
  groups = report_runs.group_seeds(report_runs.load_runs([root]))
  assert report_sensitivity.study(groups) == {}
  write_run(root, 'sdd01', seed=0, width=8, summary=numbers(52, 1, 1), methods=sdd(0.1))
  groups = report_runs.group_seeds(report_runs.load_runs([root]))
  assert list(report_sensitivity.study(groups)) == [('npz:cifar10_5k', 'resnet18_cifar')]
  write_run(root, 'ce16', seed=0, width=16, summary=numbers(52, 1, 1))  # a second D, no λ
  groups = [g for g in report_runs.group_seeds(report_runs.load_runs([root]))
            if g.runs[0].workdir.rsplit('/', 1)[-1] != 'sdd01']
  assert list(report_sensitivity.study(groups)) == [('npz:cifar10_5k', 'resnet18_cifar')]
