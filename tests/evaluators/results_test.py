"""results.json (issue 11): strict JSON (NaN and ±inf written as null), written atomically, an
unreadable record named in one line (and replaced by the next write, left out of report.md),
and null read back as a missing number by both reports."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax import report as runs_report
from sdd_jax.evaluators import report
from sdd_jax.evaluators import results

NAN, INF = float('nan'), float('inf')


def _strict(path):
  def refuse(token):
    raise ValueError(f'non-standard JSON token {token}')
  with open(path, encoding='utf-8') as f:
    return json.load(f, parse_constant=refuse)


def _write(workdir, name='accuracy', **kwargs):
  kwargs.setdefault('metrics', {'test/top1': 50.0})
  return results.write_results(str(workdir), name, data_config=_DataConfig(), **kwargs)


class _DataConfig:
  mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_nan_and_inf_become_null_in_every_part_of_the_record(tmp_path):
  path = _write(tmp_path, metrics={'test/top1': 10.0, 'test/nll': INF, 'a/b': np.float32(NAN),
                                   'c/d': jnp.float32(-INF), 'e/f': jnp.asarray(2.5)},
                details={'bins': np.array([1.0, NAN, INF]), 'x': [np.float64(-INF), 3],
                         'j': jnp.asarray([NAN, 1.0])},
                tables=[results.table('t', ('a', 'b'), [(NAN, jnp.float32(1.5))])])
  record = _strict(path)
  assert record['metrics'] == {'test/top1': 10.0, 'test/nll': None, 'a/b': None, 'c/d': None,
                               'e/f': 2.5}
  assert record['details'] == {'bins': [1.0, None, None], 'x': [None, 3], 'j': [None, 1.0]}
  assert record['tables'][0]['rows'] == [[None, 1.5]]


def test_a_failed_write_leaves_the_old_record_and_no_temporary_file(tmp_path):
  path = _write(tmp_path)
  with pytest.raises(TypeError):
    _write(tmp_path, metrics={'test/top1': 1.0}, details={'bad': object()})
  assert _strict(path)['metrics'] == {'test/top1': 50.0}
  assert os.listdir(os.path.dirname(path)) == ['results.json']


@pytest.mark.parametrize('content, problem', [
    ('{"evaluator": "accuracy", "metrics": {"test/to', 'unreadable (JSONDecodeError'),
    ('\x00\x01garbage', 'unreadable (JSONDecodeError'),
    (b'\xff\xfe\x00', 'unreadable (UnicodeDecodeError'),
    ('[1, 2]', 'a JSON list, not an object'),
    ('{"metrics": [1]}', '"metrics" is a JSON list, not an object'),
])
def test_an_unreadable_record(tmp_path, content, problem):
  path = results.results_path(str(tmp_path), 'accuracy')
  os.makedirs(os.path.dirname(path))
  with open(path, 'wb') as f:
    f.write(content if isinstance(content, bytes) else content.encode())
  with pytest.raises(results.ResultsError, match=f'^{path}: ' + problem.replace('(', r'\(')):
    results.read_results(str(tmp_path), 'accuracy')
  # The next evaluation replaces it; report.md leaves it out and names it.
  _write(tmp_path, 'calibration', metrics={'calibration/ece': 3.0})
  text = open(report.write_report(str(tmp_path)), encoding='utf-8').read()
  assert '## calibration' in text and '## accuracy' not in text
  assert f'- unreadable, left out: accuracy: {path}: {problem}' in text
  results.merge_metrics(str(tmp_path), 'accuracy', data_config=_DataConfig(),
                        metrics={'test/top1': 7.0})
  assert _strict(path)['metrics'] == {'test/top1': 7.0}


def test_null_reads_back_as_missing(tmp_path):
  """report.md prints n/a; the paper tables print the dash (no number) for a null metric."""
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'config.json').write_text(json.dumps(
      {'seed': 0, 'data': {'source': 'tfds', 'name': 'cifar100'}, 'methods': {}}))
  _write(workdir, 'calibration', metrics={'calibration/ece': NAN, 'calibration/nll': 1.5})
  text = open(report.write_report(str(workdir)), encoding='utf-8').read()
  assert '| calibration/ece | n/a |' in text and '| calibration/nll | 1.50 |' in text
  run, = runs_report.load_runs([str(tmp_path)])
  assert run.metric('calibration/ece') is None and run.metric('calibration/nll') == 1.5
  table = runs_report.base_vs_sdd(runs_report.group_seeds([run]), [
      ('ECE', 'calibration/ece'), ('NLL', 'calibration/nll')])
  assert table.splitlines()[-1] == '| CIFAR-100 | Cross-Entropy | – | – | 1.50 (n=1) | – |'


def test_corruption_without_benchmark_corruptions_writes_null_not_nan(fake, tmp_path):
  """mCA-15 of extra corruptions only is undefined (NaN): null in results.json, n/a in
  report.md, and no mCA-15 row in the paper's Table 6 (the dash is not even needed)."""
  from sdd_jax.evaluators import corruption  # pylint: disable=import-outside-toplevel
  labels = np.zeros(10, np.int64)
  table = np.zeros((20, 10), np.float32)
  ctx = fake.ctx(tmp_path, fake.array_source(fake.coded_images(np.zeros(10)), labels),
                 batch_size=8)
  root = tmp_path / 'CIFAR-100-C'
  root.mkdir()
  np.save(root / 'speckle_noise.npy', fake.coded_images(np.zeros(50)))
  np.save(root / 'labels.npy', np.zeros(50, np.uint8))
  out = corruption.Corruption({'path': str(root), 'corruptions': ('speckle_noise',)})(
      ctx, fake.fixed_logits(table))
  assert 'corruption/mca15' not in out and out['corruption/mca19'] == 100.0
  record = _strict(tmp_path / 'evals/corruption/results.json')
  assert record['details']['mca15'] is None
  assert record['details']['per_severity'] == [None] * 5
  text = open(report.write_report(str(tmp_path)), encoding='utf-8').read()
  assert '| mean (benchmark: mCA-15) |  | n/a | n/a | n/a | n/a | n/a | n/a |' in text
