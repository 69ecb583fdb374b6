"""results.json (strict JSON, normalisation recorded, merge keeps an evaluator's details) and
report.md (sections in order, tables, relative plot links, skipped sections)."""
import json

import pytest

from configs.common import data_config
from sdd_jax.evaluators import report
from sdd_jax.evaluators import results


def test_results_and_report(tmp_path):
  config = data_config('cifar100')
  workdir = str(tmp_path)
  results.write_results(workdir, 'odin', data_config=config, metrics={'odin/x/auroc': 75.0},
                        label='ODIN label', details={'nan': float('nan')},
                        tables=[results.table('T', ('set', 'AUROC'), [('x', 75.0)])])
  results.write_results(workdir, 'calibration', data_config=config,
                        metrics={'calibration/ece': 1.234}, plots=['reliability.png'])
  results.merge_metrics(workdir, 'accuracy', data_config=config,
                        metrics={'test/top1': 50.0, 'test/count': 10000.0})
  results.merge_metrics(workdir, 'fgsm', data_config=config, metrics={}, skipped='no grads')
  results.merge_metrics(workdir, 'odin', data_config=config, metrics={'odin/x/auroc': 76.0})

  text = (tmp_path / 'evals/odin/results.json').read_text()
  record = json.loads(text, parse_constant=lambda c: pytest.fail(f'non-strict JSON {c}'))
  assert record['details'] == {'nan': None} and record['label'] == 'ODIN label'
  assert record['metrics'] == {'odin/x/auroc': 76.0}  # merged, details kept
  assert record['normalisation']['mean'] == [0.4914, 0.4822, 0.4465]

  path = report.write_report(workdir, {'checkpoint step': 8})
  page = open(path, encoding='utf-8').read()
  order = [page.index(f'## {name}') for name in ('accuracy', 'calibration', 'fgsm', 'odin')]
  assert order == sorted(order)
  for text in ('- checkpoint step: 8', 'mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.201)',
               '| test/top1 | 50.00 |', '| test/count | 10000 |', '| x | 75.00 |',
               '![calibration: reliability.png](calibration/reliability.png)',
               '**Skipped:** no grads', '- skipped: fgsm', 'ODIN label'):
    assert text in page, text


@pytest.mark.parametrize('metrics, line', [
    ({'accuracy': {'test/count': 10.0, 'test/nonfinite': 0.0}}, None),
    ({'accuracy': {'test/count': 10.0, 'test/nonfinite': 3.0},
      'fgsm': {'fgsm/count': 10.0, 'fgsm/nonfinite': 4.0}},
     '**WARNING: 3 of 10 test examples had non-finite logits (NaN or inf), counted as wrong**; '
     'also: fgsm/nonfinite 4 of 10'),
    ({'fgsm': {'fgsm/count': 10.0, 'fgsm/nonfinite': 0.0},
      'odin': {'odin/lsun/n_in': 8.0, 'odin/lsun/nonfinite_in': 1.0,
               'odin/lsun/nonfinite_out': 2.0, 'msp/lsun/nonfinite_in': 0.0}},
     '**WARNING: some examples had non-finite logits (NaN or inf), counted as wrong**; '
     'counts: odin/lsun/nonfinite_in 1 of 8, odin/lsun/nonfinite_out 2 of 8'),
])
def test_nonfinite_warning_is_one_line(metrics, line):
  records = {name: {'metrics': values} for name, values in metrics.items()}
  assert report.nonfinite_warning(records) == line
