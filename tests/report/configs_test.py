"""sdd_jax.report.configs: each group's configuration, the fields that set the groups apart."""
import json

from sdd_jax import report
from sdd_jax.report import configs as report_configs
from tests.report.calibration_test import fixture_root  # noqa: F401  (the fixture)


def test_flat_leaves_out_only_the_top_seed():
  assert report_configs.flat({'seed': 1, 'optim': {'lr': 0.1, 'seed': 2}, 'methods': {}}) == {
      'optim.lr': '0.1', 'optim.seed': '2', 'methods': '{}'}


def test_each_group_lists_the_fields_that_differ_and_the_shared_ones(root, tmp_path):
  out = str(tmp_path / 'report.md')
  assert report.main([root, '--out', out]) == 0
  text = open(out, encoding='utf-8').read()
  section = text[text.index('## Configurations'):text.index('## Runs')]
  lines = section.splitlines()
  header = [c.strip(' `') for c in lines[4].strip('|').split('|')]
  rows = [[c.strip() for c in line.strip('|').split('|')] for line in lines[6:9]]
  table = {row[0]: dict(zip(header, row)) for row in rows}
  assert list(table) == ['CIFAR-100, Cross-Entropy Base', 'CIFAR-100, Cross-Entropy +SD-Dropout '
                         '(λ=1)', 'CIFAR-100, CS-KD +SD-Dropout (λ=0.1)']
  assert 'seed' not in header and 'model.name' not in header  # a seed group; shared
  # The methods as the runs resolved them: the weights, and CS-KD's defaults.
  weight = [table[name]['methods.sd_dropout.weight'] for name in table]
  assert weight == ['–', '1.0', '0.1']
  assert table['CIFAR-100, Cross-Entropy Base']['methods'] == '{}'
  assert [table[name]['n'] for name in table] == ['2', '2', '1']
  assert '- `model.name` = `"resnet18_cifar"`' in section
  assert f'- `model.kwargs.width` = `{json.dumps(16)}`' in section
