"""sdd_jax.report.per_seed: every run's values, on demand (`--per_seed`)."""
from sdd_jax import report
from tests.report.calibration_test import CE, SD, fixture_root  # noqa: F401  (the fixture)


def test_per_seed_values_are_each_runs_own(root, tmp_path):
  out = str(tmp_path / 'report.md')
  assert report.main([root, '--out', out, '--per_seed']) == 0
  text = open(out, encoding='utf-8').read()
  section = text[text.index('## Per-seed values'):text.index('## Configurations')]
  lines = section.splitlines()
  keys = ['test/top1', 'test/top5', 'calibration/ece', 'calibration/nll',
          'calibration/ece_adaptive', 'calibration/ece_classwise', 'calibration/brier',
          'calibration/aurc', 'calibration/eaurc', 'temperature/t_star',
          'temperature/ece_after', 'temperature/nll_after']  # the keys some run has
  assert lines[2] == '| Group | seed | ' + ' | '.join(f'`{k}`' for k in keys) + ' |'
  rows = lines[4:9]
  name = 'CIFAR-100, Cross-Entropy'
  want = [f'| {name} Base | {s} | ' + ' | '.join(f'{CE[k][s]:.2f}' for k in keys) + ' |'
          for s in (0, 1)]
  want += [f'| {name} +SD-Dropout (λ=1) | {s} | ' + ' | '.join(f'{SD[k][s]:.2f}' for k in keys)
           + ' |' for s in (0, 1)]
  want += ['| CIFAR-100, CS-KD +SD-Dropout (λ=0.1) | 0 | 73.00 | ' + ' | '.join(
      ['–'] * (len(keys) - 1)) + ' |']
  assert rows == want
