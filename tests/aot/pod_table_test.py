"""The pod table's command on fake compile reports (no compilation): its rows and estimates
against hand arithmetic, resuming, a row that does not fit, and the committed table in
docs/pods.md as this command's output of docs/pod_table.json."""
import json
import os

import pytest

from sdd_jax.aot import __main__ as aot_main
from sdd_jax.aot import chips
from sdd_jax.aot import compile as compile_lib
from sdd_jax.aot import pod_table
from sdd_jax.aot import report as report_lib
from sdd_jax.config import cli as config_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fake_run(calls):
  """aot_main.run's stand-in: every train program does 197 GFLOP and moves 3.276 GB per chip,
  with one 0.1 GB all-reduce, on a v5e; a batch over 100,000 does not fit."""
  def run(argv):
    calls.append(argv)
    args = dict(a.split('=', 1) for a in argv if a.startswith('--config.'))
    topology = argv[argv.index('--topology') + 1]
    devices = {'v5e:16x16': 256, 'v5e:2x4': 8}[topology]
    per_step = int(args.get('--config.batch_size', 0)) or int(
        args['--config.data.tokens_per_batch'])
    if per_step > 100_000:
      raise compile_lib.DoesNotFitError('the compiler refuses it: RESOURCE_EXHAUSTED')
    program = dict(flops=197e9, bytes_accessed=3.276e9, compile_seconds=12.0,
                   memory=dict(total=3 * 2**30),
                   collectives={'all-reduce': {'count': 3, 'bytes': 100e6},
                                'all-gather': {'count': 1, 'bytes': 0}})
    chip = chips.chip_of(topology)
    program.update(per_step=per_step, fits=True,
                   estimate=report_lib.roofline(program, chip, devices, per_step))
    return dict(devices=devices, unit='images' if 'batch_size' in str(args) else 'tokens',
                chip=dict(vars(chip)), programs=dict(train=program))
  return run


GRID = [pod_table._row(pod_table.R152, 'v5e:16x16', 256, 8, 0),
        pod_table._row(pod_table.R18, 'v5e:2x4', 8, 128, 128),
        pod_table._row(pod_table.R18, 'v5e:2x4', 8, 12800, 128)]


def test_rows_and_estimates_by_hand_resume_and_a_row_that_does_not_fit(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(aot_main, 'run', _fake_run(calls))
  monkeypatch.setattr(pod_table, 'GRID', GRID)
  rows = pod_table.run(['pod_table', '--out', str(tmp_path)])
  assert [c[c.index('--topology') + 1] for c in calls] == ['v5e:16x16', 'v5e:2x4', 'v5e:2x4']
  assert calls[0][-2:] == ['--config.batch_size=2048', '--config.model.bn_group=0']
  assert '--programs' in calls[0] and calls[0][calls[0].index('--programs') + 1] == 'train'
  first = rows[0]
  assert (first['chips'], first['per_chip'], first['per_step'], first['bn_group']) == (
      256, 8, 2048, 0)
  # v5e: 197e12 FLOP/s, 819e9 B/s, 400e9 B/s ICI. compute 197e9 / 197e12 = 1 ms; memory
  # 3.276e9 / 819e9 = 4 ms; all-reduce 100e6 x 2 x 255/256 / 400e9 = 0.498 ms
  assert first['compute_seconds'] == pytest.approx(1e-3)
  assert first['memory_seconds'] == pytest.approx(4e-3)
  assert first['collective_seconds'] == pytest.approx(0.5e-3 * 255 / 256)
  step = 4e-3 + 0.5e-3 * 255 / 256
  assert first['mfu'] == pytest.approx(1e-3 / step)
  assert first['per_slice_per_second'] == pytest.approx(2048 / step)
  assert (first['collective_count'], first['all_reduces']) == (4, 3)
  assert rows[1]['per_chip'] == 128 and rows[1]['bn_group'] == 128
  assert pod_table.quote(first) == (
      'v5e:16x16 (256 chips), 8 images/chip, global BN: 3.00 GiB/chip, 197.0 GFLOP and 3.28 GB '
      'per chip per step, 4 collectives, est. step 4.50 ms, est. MFU 22.2%')
  assert rows[2] == dict(config=pod_table.R18, topology='v5e:2x4', fits=False,
                         overrides=['--config.batch_size=102400', '--config.model.bn_group=128'],
                         error='the compiler refuses it: RESOURCE_EXHAUSTED')
  table = (tmp_path / 'pod_table.md').read_text()
  assert ('| imagenet_resnet152_sdd.py:pod | v5e:16x16 (256) | 8 img | 2048 | global | '
          '3.00 / 14.90 GiB | 197.0 | 3.28 | 60 | 4 (3) | 1.00 / 4.00 / 0.50 | 4.50 | 22.2% | '
          '455,309 img | 12 |') in table
  assert '| cifar100_resnet18_sdd.py:pod | v5e:2x4 | --config.batch_size=102400' in table
  saved = json.loads((tmp_path / 'pod_table.json').read_text())
  assert saved['rows'] == rows and saved['meta']['jax']
  # a second run compiles nothing: every row is in DIR/rows
  assert pod_table.run(['pod_table', '--out', str(tmp_path)]) == rows and len(calls) == 3


def test_the_docs_table_is_the_commands_output_of_the_committed_json():
  with open(os.path.join(ROOT, 'docs', 'pod_table.json')) as f:
    saved = json.load(f)
  with open(os.path.join(ROOT, 'docs', 'pods.md')) as f:
    docs = f.read()
  assert saved['meta']['command'].startswith('python -m sdd_jax.aot.pod_table --out ')
  assert pod_table.markdown(saved['rows'], saved['meta']) in docs
  # every row of the grid is in it, in the grid's order
  assert [(r['config'], r['topology'], r['overrides']) for r in saved['rows']] == [
      (r['config'], r['topology'], r['overrides']) for r in pod_table.GRID]


@pytest.mark.parametrize('spec', [pod_table.R152, pod_table.R18, pod_table.IWSLT])
def test_each_pod_config_docstring_quotes_the_table_row_of_its_defaults(spec):
  """The docstring's compiled estimates are the table's (whitespace aside), and one quoted row
  is the config's own pod defaults (global batch and BN group, or tokens per batch)."""
  with open(os.path.join(ROOT, 'docs', 'pod_table.json')) as f:
    rows = [r for r in json.load(f)['rows'] if r['config'] == spec and r['fits']]
  path, arg = spec.split(':')
  with open(os.path.join(ROOT, path)) as f:
    doc = ' '.join(f.read().split('"""')[1].split())
  quoted = [r for r in rows if pod_table.quote(r) in doc]
  assert quoted, f'{path} quotes no row of docs/pod_table.json'
  config = config_cli.load(['x', '--config', os.path.join(ROOT, path) + ':' + arg])
  if config.get('task') == 'translation':
    defaults = [f'--config.data.tokens_per_batch={config.data.tokens_per_batch}']
  else:
    defaults = [f'--config.batch_size={config.batch_size}',
                f'--config.model.bn_group={config.model.bn_group}']
  assert defaults in [r['overrides'] for r in quoted]
