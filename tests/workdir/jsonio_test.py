"""One convention for non-finite numbers (issue 23): `metrics.jsonl`, `summary.json` and the
checkpoint record are strict JSON (RFC 8259) when a metric is NaN or ±inf, written as null;
their readers get NaN back, and a resumed log window gets the exact NaN, inf or -inf."""
import json
import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax.train import throughput
from sdd_jax.workdir import jsonio
from sdd_jax.workdir import log as train_log
from sdd_jax.workdir import records
from sdd_jax.workdir import writers as metric_writers
from tests import workdirs

NAN, INF = float('nan'), float('inf')

IMAGES = throughput.Unit('images', per_step=16)  # the global batch of the logged steps


def _strict_lines(path):
  with open(path, encoding='utf-8') as f:
    text = f.read()
  for token in ('NaN', 'Infinity'):
    assert token not in text, text
  return [workdirs.strict_json_text(line, path) for line in text.splitlines()]


def test_metrics_jsonl_is_strict_json_and_reads_back_after_a_resume(tmp_path):
  workdir = str(tmp_path)
  writer = metric_writers.create_writer(workdir, 10, True, 0)
  writer.write_scalars(1, {'train/loss': 1.5, 'test/nll': INF, 'probe/r1': NAN,
                           'probe/grad_cosine': -INF})
  writer.write_scalars(2, {'train/loss': 0.5})
  writer.close()
  path = os.path.join(workdir, 'metrics.jsonl')
  expected = [{'step': 1, 'train/loss': 1.5, 'test/nll': None, 'probe/r1': None,
               'probe/grad_cosine': None}, {'step': 2, 'train/loss': 0.5}]
  assert _strict_lines(path) == expected
  metric_writers.create_writer(workdir, 10, True, 1).close()  # a resume from step 1 keeps it
  assert _strict_lines(path) == expected[:1]


def test_summary_json_is_strict_json_and_the_finished_run_check_reads_it(tmp_path):
  path = str(tmp_path / 'summary.json')
  train_log.write_summary(path, {'steps': 8, 'train/loss': 0.25, 'test/nll': np.float32(INF),
                                 'test/top1': jnp.asarray(NAN), 'x': [1.0, -INF]})
  assert workdirs.strict_json(path) == {'steps': 8, 'train/loss': 0.25, 'test/nll': None,
                                        'test/top1': None, 'x': [1.0, None]}
  summary = train_log.read_summary(path, 8)
  assert math.isnan(summary['test/nll']) and math.isnan(summary['test/top1'])
  assert summary['train/loss'] == 0.25 and summary['x'] == [1.0, None]


def test_a_resumed_log_window_gets_nan_and_inf_back_exactly(tmp_path):
  """The record beside a checkpoint holds the window as null + its kind; the resumed window's
  means (and so metrics.jsonl and TensorBoard) are the uninterrupted run's, bit for bit."""
  pending = train_log.PendingMetrics()
  steps = [(1, {'train/loss': 1.0, 'train/a': INF, 'train/b': NAN, 'train/c': -INF}),
           (2, {'train/loss': 2.0, 'train/a': INF, 'train/b': 3.0, 'train/c': 4.0})]
  for step, metrics in steps:
    pending.add(step, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()})
  pending.last = {'train/loss': 1.5, 'train/top1': NAN, 'train/x': -INF}
  step_dir = tmp_path / '8'
  step_dir.mkdir()
  records.write(str(step_dir), config_digest=None, run=pending.run_state())
  text = (step_dir / records.RECORD_FILE).read_text()
  assert 'NaN' not in text and 'Infinity' not in text and '"nan"' in text  # null + its kind
  workdirs.strict_json(step_dir / records.RECORD_FILE)
  resumed = train_log.PendingMetrics(records.read(str(step_dir))['run'])
  assert resumed.last.keys() == pending.last.keys()
  for key, value in pending.last.items():
    np.testing.assert_array_equal(resumed.last[key], value)
  expected, got = pending.flush(IMAGES), resumed.flush(IMAGES)
  assert expected['train/a'] == got['train/a'] == INF and got['train/c'] == -INF
  for key in ('train/loss', 'train/a', 'train/b', 'train/c'):
    np.testing.assert_array_equal(got[key], expected[key])


def test_a_record_written_before_the_convention_still_resumes():
  """Records of earlier versions held 'nan' and 'inf' strings (float() reads them)."""
  pending = train_log.PendingMetrics({
      'window': [[3, {'train/loss': 1.0, 'train/a': 'inf'}]],
      'window_dtypes': {'train/loss': 'float32', 'train/a': 'float32'},
      'last_train': {'train/loss': 0.5, 'train/b': 'nan'}})
  assert math.isnan(pending.last['train/b'])
  assert pending.flush(IMAGES)['train/a'] == INF


def test_dumps_and_loads_refuse_what_is_not_strict_json():
  assert jsonio.dumps({'a': (NAN, INF, np.float64(-INF)), 'b': np.int32(2)}) == \
      '{"a": [null, null, null], "b": 2}'
  with pytest.raises(ValueError):
    jsonio.dumps({'a': object()}, default=lambda o: NAN)  # a slip past jsonable: refused
  for text in ('{"a": NaN}', '[Infinity]', '-Infinity'):
    with pytest.raises(ValueError, match='not strict JSON'):
      jsonio.loads(text)
  assert json.loads('[NaN]')[0] != json.loads('[NaN]')[0]  # what the strict reader refuses
  assert jsonio.kinds({'a': NAN, 'b': INF, 'c': -INF, 'd': 1.0}) == \
      {'a': 'nan', 'b': 'inf', 'c': '-inf'}
  assert [jsonio.number(None, k) for k in ('inf', '-inf')] == [INF, -INF]
  assert math.isnan(jsonio.number(None)) and jsonio.number(2) == 2.0
