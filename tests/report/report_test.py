"""sdd_jax.report: paper-style tables over fake workdirs with hand-worked numbers."""
import json
import os

import pytest

from sdd_jax import report
from sdd_jax.report import tables as report_tables

SDD = dict(weight=1.0, temperature=3.0, rate=0.5, direction='both', num_samples=2, position=4)


def write_run(root, name, *, seed, top1, data='cifar100', methods=None, head_hidden=(),
              calibration=None, extra=None):
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  config = {'seed': seed, 'data': {'source': 'tfds', 'name': data},
            'model': {'name': 'resnet18_cifar', 'head_hidden': list(head_hidden)},
            'methods': methods or {}}
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config, f)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({'test/top1': top1, 'steps': 10, **(extra or {})}, f)
  if calibration:  # only in evals/, as evaluate.py leaves it
    os.makedirs(os.path.join(workdir, 'evals', 'calibration'))
    with open(os.path.join(workdir, 'evals', 'calibration', 'results.json'), 'w') as f:
      json.dump({'evaluator': 'calibration', 'metrics': dict(zip(
          ('calibration/ece', 'calibration/nll'), calibration)), 'plots': ['reliability.png']}, f)


@pytest.fixture(name='root')
def fixture_root(tmp_path):
  root = str(tmp_path / 'runs')
  for seed, top1 in enumerate((74.0, 75.0, 76.5)):
    write_run(root, f'ce/s{seed}', seed=seed, top1=top1,
              calibration=(12.0, 1.1) if seed == 0 else None)
  for seed, top1 in enumerate((77.0, 77.2, 76.8)):
    write_run(root, f'sdd/s{seed}', seed=seed, top1=top1, methods={'sd_dropout': SDD},
              calibration=(7.5, 0.9) if seed == 0 else None)
  for seed, top1 in enumerate((77.3, 77.5)):
    write_run(root, f'cs_kd/s{seed}', seed=seed, top1=top1, methods={'cs_kd': {'weight': 1.0}})
  write_run(root, 'cub/ce', seed=0, top1=53.8, data='caltech_birds2011')
  # Ablations: rate 0.1 and 0.3 at weight 1; rate 0.3 at weight 2; the forward direction.
  write_run(root, 'abl/r01', seed=0, top1=76.3, methods={'sd_dropout': dict(SDD, rate=0.1)})
  write_run(root, 'abl/r03', seed=0, top1=76.5, methods={'sd_dropout': dict(SDD, rate=0.3)})
  write_run(root, 'abl/w2r03', seed=0, top1=76.79,
            methods={'sd_dropout': dict(SDD, rate=0.3, weight=2.0)})
  write_run(root, 'abl/fwd', seed=0, top1=76.6,
            methods={'sd_dropout': dict(SDD, direction='forward')})
  return root


# CE on CIFAR-100: mean(74, 75, 76.5) = 75.1667; squared deviations 1.3611 + 0.0278 + 1.7778
# = 3.1667, / (3 - 1) = 1.5833, sqrt = 1.2583. SD-Dropout: 77.0, std sqrt(0.08 / 2) = 0.20.
# CS-KD: 77.4, std sqrt(0.02 / 1) = 0.1414, two seeds. CUB: one seed.
# The +SD-Dropout cell (SD-Dropout alone: λ=1): 77.0 - 75.1667 = +1.83, not bold: Welch's t =
# 1.83 / sqrt(1.5833/3 + 0.04/3) = 2.49 on 2.10 degrees of freedom, two-sided p = 0.12 > 0.05.
# A lone number (CUB, CS-KD) has nothing to beat and is not bold.
TABLE1 = """\
| Method | CIFAR-100 Base | CIFAR-100 +SD-Dropout | CUB-200-2011 Base | CUB-200-2011 +SD-Dropout |
|---|---|---|---|---|
| Cross-Entropy | 75.17 ± 1.26 | 77.00 ± 0.20 (+1.83) (λ=1) | 53.80 (n=1) | – |
| CS-KD | 77.40 ± 0.14 (n=2) | – | – | – |"""

# Gains 7.5 - 12 and 0.9 - 1.1; one seed each: nothing is bold.
CALIBRATION = """\
| Data set | Method | ECE % Base | ECE % +SD-Dropout | NLL Base | NLL +SD-Dropout |
|---|---|---|---|---|---|
| CIFAR-100 | Cross-Entropy | 12.00 (n=1) | 7.50 (-4.50) (λ=1) (n=1) | 1.10 (n=1) | 0.90 (-0.20) (λ=1) (n=1) |"""

# Rows: weight λ; columns: rate β; the rate-0.5 cell is the 3-seed SD-Dropout group, marked
# (n=3) because most cells of this table have one seed. No bold: one-seed cells.
TABLE14 = """\
| methods.sd_dropout.weight | 0.1 | 0.3 | 0.5 |
|---|---|---|---|
| 1.0 | 76.30 (n=1) | 76.50 (n=1) | 77.00 ± 0.20 (n=3) |
| 2.0 | – | 76.79 (n=1) | – |"""

# Base: the cross-entropy runs of each data set; the rate/weight ablations are not at the
# paper's settings and stay out.
TABLE9 = """\
| dataset | Base | Forward | Both Directions |
|---|---|---|---|
| CIFAR-100 | 75.17 ± 1.26 | 76.60 (n=1) | 77.00 ± 0.20 |
| CUB-200-2011 | 53.80 (n=1) | – | – |"""


def test_load_and_group(root):
  runs = report.load_runs([root])
  assert len(runs) == 13
  groups = report.group_seeds(runs)
  assert [(g.field('dataset'), g.field('method'), g.field('sd_dropout'), len(g.runs))
          for g in groups] == [('cifar100', 'ce', 'Base', 3)] + [
              ('cifar100', 'ce', '+SD-Dropout', n) for n in (1, 1, 1, 3, 1)] + [
                  ('cifar100', 'cs_kd', 'Base', 2), ('caltech_birds2011', 'ce', 'Base', 1)]
  assert [r.config['seed'] for r in groups[0].runs] == [0, 1, 2]
  assert report.load_runs([os.path.join(root, 'ce', 's1')])[0].metric('test/top1') == 75.0


def test_table1_exact(root):
  assert report.table1(report.group_seeds(report.load_runs([root]))) == TABLE1


def test_report_file_has_the_tables_and_links(root, tmp_path):
  out = str(tmp_path / 'out' / 'report.md')
  assert report.main([root, '--out', out]) == 0
  with open(out, encoding='utf-8') as f:
    text = f.read()
  assert '\n' + TABLE1 + '\n' in text
  assert '### Calibration (Table 2; `calibration/ece`, `calibration/nll`)\n\n' + CALIBRATION \
      in text
  assert ('### Table 14: weight λ (rows) × rate β (columns): `test/top1`\n\n' + TABLE14 + '\n'
          in text)
  assert TABLE9 in text
  assert '- [CIFAR-100, Cross-Entropy +SD-Dropout (λ=1), seed 0](../runs/sdd/s0/evals/calibration/' \
      'reliability.png)' in text
  assert 'Table 12' not in text and 'Table 13' not in text  # nothing varies there
  assert 'FGSM' not in text
  assert ('- CIFAR-100, Cross-Entropy +SD-Dropout (λ=1) (methods.sd_dropout.direction="forward", '
          'methods.sd_dropout.rate=0.5), n=1: '
          '[seed 0](../runs/abl/fwd)\n') in text


def test_no_run_at_the_paper_settings(tmp_path):
  write_run(str(tmp_path), 'r', seed=0, top1=1.0, methods={'sd_dropout': dict(SDD, rate=0.3)})
  text = report.render(report.load_runs([str(tmp_path)]), str(tmp_path))
  assert "No run at the paper's settings (model.head_hidden=[]," in text


def test_pivot_is_generic_and_flags_ambiguous_cells(root):
  groups = report.group_seeds(report.load_runs([root]))
  table = report.pivot(groups, 'method', 'sd_dropout', 'test/top1')
  lines = table.splitlines()
  assert lines[0] == '| method | Base | +SD-Dropout |'
  assert lines[2].startswith('| Cross-Entropy | 75.17 ± 1.26 | 77.00 ± 0.20 |')
  # Ablation runs and CUB share a cell with the main groups: a footnote names them.
  assert any(line.startswith('- Cross-Entropy / +SD-Dropout: 5 configurations') for line in lines)


# Table 11 over one seed each: standard dropout (K=1 mask), the equal-steps variant (K=2), and
# SD-Dropout; a rate-0.3 dropout run is not at the paper's settings and stays out. One seed:
# no bold.
TABLE11 = """\
| dataset | Base | +Dropout (standard) | +Dropout (standard†) | +SD-Dropout |
|---|---|---|---|---|
| CIFAR-100 | 74.80 (n=1) | 75.40 (n=1) | 73.50 (n=1) | 77.00 (n=1) |
| CUB-200-2011 | 53.80 (n=1) | 64.60 (n=1) | – | 66.60 (n=1) |"""

# DML's second network and ensemble; SD-Dropout beside DML at its weight 0.1; one seed: no bold.
DML = """\
| Data set | DML | Network 0 | Network 1 | Ensemble |
|---|---|---|---|---|
| CIFAR-100 | Base | 78.90 (n=1) | 78.50 (n=1) | 80.10 (n=1) |
| CIFAR-100 | +SD-Dropout (λ=0.1) | 79.00 (n=1) | 80.10 (n=1) | 80.10 (n=1) |"""

# Table 1 keeps the self-KD methods only: the dropout baselines are in Table 11.
TABLE1_WITH_DML = """\
| Method | CIFAR-100 Base | CIFAR-100 +SD-Dropout | CUB-200-2011 Base | CUB-200-2011 +SD-Dropout |
|---|---|---|---|---|
| Cross-Entropy | 74.80 (n=1) | 77.00 (+2.20) (λ=1) (n=1) | 53.80 (n=1) | 66.60 (+12.80) (λ=1) (n=1) |
| DML | 78.90 (n=1) | 79.00 (+0.10) (λ=0.1) (n=1) | – | – |"""


def test_table11_dml_and_table1_without_the_baselines(tmp_path):
  root = str(tmp_path / 'runs')
  dropout = lambda rate, samples: {'feature_dropout': {'rate': rate, 'samples': samples}}
  for data, tag, ce, standard, sdd in (('cifar100', 'c', 74.8, 75.4, 77.0),
                                       ('caltech_birds2011', 'b', 53.8, 64.6, 66.6)):
    write_run(root, f'{tag}/ce', seed=0, top1=ce, data=data)
    write_run(root, f'{tag}/drop', seed=0, top1=standard, data=data, methods=dropout(0.5, 1))
    write_run(root, f'{tag}/sdd', seed=0, top1=sdd, data=data, methods={'sd_dropout': SDD})
  write_run(root, 'c/drop_eq', seed=0, top1=73.5, methods=dropout(0.5, 2))
  write_run(root, 'c/drop03', seed=0, top1=70.0, methods=dropout(0.3, 1))
  write_run(root, 'c/dml', seed=0, top1=78.9, methods={'dml': {'weight': 1.0}},
            extra={'dml/net1/top1': 78.5, 'dml/ensemble/top1': 80.1})
  write_run(root, 'c/dml_sdd', seed=0, top1=79.0,
            methods={'dml': {'weight': 1.0}, 'sd_dropout': dict(SDD, weight=0.1)},
            extra={'dml/net1/top1': 80.1, 'dml/ensemble/top1': 80.1})
  text = report.render(report.load_runs([root]), str(tmp_path))
  assert ('### Table 11: standard dropout vs SD-Dropout (†: dropout with as many trained masks '
          'per step as SD-Dropout): `test/top1`\n\n' + TABLE11 + '\n\n') in text
  assert '\n' + DML + '\n' in text
  assert '\n' + TABLE1_WITH_DML + '\n' in text
  assert 'Table 9' not in text  # no KL direction other than both


def _evals(root, name, evaluator, values):
  os.makedirs(os.path.join(root, name, 'evals', evaluator))
  with open(os.path.join(root, name, 'evals', evaluator, 'results.json'), 'w') as f:
    json.dump({'evaluator': evaluator, 'metrics': values}, f)


# Two seeds each; sample std of two values a, b is |a - b| / sqrt(2). Rows without a number
# (the other corruptions, mCA-19) are dropped; lower is better for FPR95. Bold only where
# Welch's two-sided p < 0.05: lsun FPR95, 71 ± 1.41 vs 61 ± 1.41: t = 10 / sqrt(2/2 + 2/2) =
# 7.07 on 2 degrees of freedom, p = 0.019. Not: the clean accuracy, 75.5 ± 0.71 vs 77 ± 0
# (t = 1.5 / 0.5 = 3 on 1 degree of freedom, p = 0.20), nor the others (p >= 0.09).
TABLE6 = """\
| Corruption | top-1 % Base | top-1 % +SD-Dropout (λ=1) |
|---|---|---|
| Noise: Gauss. | 21.00 ± 1.41 (n=2) | 20.00 ± 1.41 (-1.00) (n=2) |
| mCA-15 | 47.50 ± 0.71 (n=2) | 48.50 ± 0.71 (+1.00) (n=2) |
| Clean | 75.50 ± 0.71 (n=2) | 77.00 ± 0.00 (+1.50) (n=2) |"""
TABLE7 = """\
| OOD set | FPR95 ↓ Base | FPR95 ↓ +SD-Dropout (λ=1) | Detection error ↓ Base | Detection error ↓ +SD-Dropout (λ=1) | AUROC ↑ Base | AUROC ↑ +SD-Dropout (λ=1) | AUPR in ↑ Base | AUPR in ↑ +SD-Dropout (λ=1) | AUPR out ↑ Base | AUPR out ↑ +SD-Dropout (λ=1) |
|---|---|---|---|---|---|---|---|---|---|---|
| lsun | 71.00 ± 1.41 (n=2) | **61.00 ± 1.41** (-10.00) (n=2) | – | – | 81.00 ± 1.41 (n=2) | 85.00 ± 0.00 (+4.00) (n=2) | – | – | – | – |
| svhn | 82.00 ± 2.83 (n=2) | 76.00 ± 0.00 (-6.00) (n=2) | – | – | 78.00 ± 0.00 (n=2) | 78.00 ± 1.41 (+0.00) (n=2) | – | – | – | – |
| Average | 76.50 ± 2.12 (n=2) | 68.50 ± 0.71 (-8.00) (n=2) | – | – | 79.50 ± 0.71 (n=2) | 81.50 ± 0.71 (+2.00) (n=2) | – | – | – | – |"""


def test_tables_6_and_7_in_the_paper_layout(tmp_path):
  root = str(tmp_path / 'runs')
  runs = {  # name: (methods, gaussian_noise, mca15, clean, (lsun, svhn) FPR95, (...) AUROC)
      'ce0': ({}, 20, 47, 75, (70, 80), (80, 78)),
      'ce1': ({}, 22, 48, 76, (72, 84), (82, 78)),
      'sdd0': ({'sd_dropout': SDD}, 19, 48, 77, (60, 76), (85, 77)),
      'sdd1': ({'sd_dropout': SDD}, 21, 49, 77, (62, 76), (85, 79))}
  for name, (methods, noise, mca15, clean, fpr, auroc) in runs.items():
    write_run(root, name, seed=int(name[-1]), top1=70.0, methods=methods)
    _evals(root, name, 'corruption', {'corruption/gaussian_noise': noise,
                                      'corruption/mca15': mca15, 'corruption/clean': clean,
                                      'corruption/nonfinite': 0.0})
    _evals(root, name, 'odin', {'odin/lsun/fpr95': fpr[0], 'odin/svhn/fpr95': fpr[1],
                                'odin/lsun/auroc': auroc[0], 'odin/svhn/auroc': auroc[1],
                                'odin/lsun/nonfinite_in': 0.0, 'odin/lsun/nonfinite_out': 0.0})
  text = report.render(report.load_runs([root]), str(tmp_path))
  assert ('### Table 6: accuracy per corruption (mean over severities), CIFAR-100, '
          'Cross-Entropy\n\n' + TABLE6 + '\n') in text
  assert ('### Table 7: ODIN out-of-distribution detection %, CIFAR-100, Cross-Entropy '
          'in-distribution\n\n' + TABLE7 + '\n') in text
  assert 'MSP' not in text


def test_table5_columns_are_attacks_not_counts(tmp_path):
  """fgsm/count and fgsm/nonfinite (issue 11) are counts, not columns of Table 5."""
  root = str(tmp_path / 'runs')
  for name, methods, clean, attacked in (('ce', {}, 70.0, 30.0),
                                         ('sdd', {'sd_dropout': SDD}, 72.0, 36.0)):
    write_run(root, name, seed=0, top1=70.0, methods=methods)
    _evals(root, name, 'fgsm', {'fgsm/clean': clean, 'fgsm/paper_0.2': attacked,
                                'fgsm/count': 100.0, 'fgsm/nonfinite': 3.0})
  text = report.render(report.load_runs([root]), str(tmp_path))
  table = text[text.index('### FGSM top-1 % (Table 5)'):].split('\n\n')[1].splitlines()
  assert table[0] == ('| Data set | Method | clean Base | clean +SD-Dropout | paper_0.2 Base | '
                      'paper_0.2 +SD-Dropout |')
  assert table[2] == ('| CIFAR-100 | Cross-Entropy | 70.00 (n=1) | 72.00 (+2.00) (λ=1) (n=1) | '
                      '30.00 (n=1) | 36.00 (+6.00) (λ=1) (n=1) |')


# Acc@1 and Acc@5 per method on ImageNet; the CIFAR run is not in it.
TABLE3 = """\
| Method | Acc@1 | Acc@5 |
|---|---|---|
| Cross-Entropy | 74.80 (n=1) | 92.50 (n=1) |
| SD-Dropout (λ=1) | 75.50 (n=1) | 92.70 (n=1) |"""


def test_table3_imagenet(tmp_path):
  root = str(tmp_path / 'runs')
  for name, methods, top1, top5 in (('ce', {}, 74.8, 92.5), ('sdd', {'sd_dropout': SDD}, 75.5,
                                                              92.7)):
    write_run(root, name, seed=0, top1=top1, data='imagenet2012', methods=methods,
              extra={'test/top5': top5})
  write_run(root, 'cifar', seed=0, top1=70.0)
  text = report.render(report.load_runs([root]), str(tmp_path))
  assert ('## Table 3: ImageNet top-1 / top-5 accuracy % (`test/top1`, `test/top5`)\n\n'
          + TABLE3 + '\n') in text


def test_table10_names_the_backbones_as_the_paper():
  root = '/nonexistent'
  groups = []
  for name, sdd, top1 in (('resnet18_cifar', False, 74.8), ('resnet18_cifar', True, 77.0),
                          ('densenet121_cifar', False, 77.3)):
    config = {'seed': 0, 'data': {'source': 'tfds', 'name': 'cifar100'},
              'model': {'name': name, 'head_hidden': []},
              'methods': {'sd_dropout': SDD} if sdd else {}}
    groups.append(report_tables.Group((report.Run(root, config, {'test/top1': top1}, {}),)))
  lines = report.ablation_sections(groups)[0][1].splitlines()
  assert lines[0] == '| model.name | Base | +SD-Dropout |'
  assert lines[2:] == ['| ResNet-18 | 74.80 (n=1) | 77.00 (n=1) |',
                       '| DenseNet-121 | 77.30 (n=1) | – |']


def test_cells():
  cell = report_tables.Cell
  assert cell(()).text(3) == '–'
  assert cell((1.0, 2.0, 3.0)).text(3) == '2.00 ± 1.00'
  assert cell((1.0, 2.0, 3.0, 4.0)).text(3) == '2.50 ± 1.29 (n=4)'
  assert cell((5.0,)).text(1) == '5.00 (n=1)'
  assert cell((1.0, 2.0, 3.0), bold=True, gain=-0.5).text(3) == '**2.00 ± 1.00** (-0.50)'
  assert cell((1.0,), note='(λ=1)', gain=0.5).text(3) == '1.00 (+0.50) (λ=1) (n=1)'
  rows = [['a', cell((0.5,)), cell((0.504,)), cell((0.6,)), cell(())]]
  report_tables.embolden(rows, [(0, 1), (0, 2), (0, 3), (0, 4)], lower=True)
  assert [c.bold for c in rows[0][1:]] == [False] * 4  # one seed each: never bold


def test_no_workdir_is_an_error(tmp_path, capsys):
  assert report.main([str(tmp_path), '--out', str(tmp_path / 'r.md')]) == 1
  assert 'no workdir' in capsys.readouterr().err
