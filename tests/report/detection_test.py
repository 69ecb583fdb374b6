"""Table 4 of the report from detection workdirs (results.json written by hand here, in the
format `python -m sdd_jax.detection.finetune` writes; numbers worked by hand)."""
import json

from sdd_jax import report
from sdd_jax.report import detection


def _write(folder, methods, schedule, map_, map50, model='resnet152'):
  folder.mkdir(parents=True)
  record = {'kind': 'detection', 'schedule': schedule, 'epochs': 12, 'mAP': map_, 'mAP50': map50,
            'mAP75': 0.0, 'backbone': {'model': model, 'methods': json.dumps(methods)}}
  (folder / 'results.json').write_text(json.dumps(record))


def test_table4_rows_cells_and_the_papers_numbers(tmp_path):
  _write(tmp_path / 'ce_1x_a', [], '1x', 39.0, 60.0)
  _write(tmp_path / 'ce_1x_b', [], '1x', 40.0, 61.0)
  _write(tmp_path / 'sdd_half', ['sd_dropout'], '0.5x', 32.25, 52.5)
  _write(tmp_path / 'r50' / 'run', [], '1x', 37.0, 58.0, model='resnet50')
  (tmp_path / 'broken').mkdir()
  (tmp_path / 'broken' / 'results.json').write_text('{"kind": "detection"}')
  out = tmp_path / 'report.md'
  assert report.main([str(tmp_path), '--out', str(out)]) == 0
  lines = out.read_text().splitlines()
  header = lines.index('| Backbone pre-training | 0.5x schedule | 1x schedule | paper 0.5x | '
                       'paper 1x |')
  table = lines[header + 2:]
  # mean of 39, 40 = 39.5, sample std = sqrt(0.5) = 0.71; of 60, 61: 60.5 ± 0.71; n = 2 < 3.
  assert table[0] == ('| Cross-Entropy | – | 39.50 ± 0.71 (n=2) / 60.50 ± 0.71 (n=2) | '
                      '31.2 / 50.6 | 39.4 / 60.1 |')
  assert table[1] == ('| Cross-Entropy (resnet50) | – | 37.00 (n=1) / 58.00 (n=1) | – | – |')
  assert table[2] == ('| SD-Dropout | 32.25 (n=1) / 52.50 (n=1) | – | 32.5 / 52.8 | '
                      '39.8 / 60.7 |')


def test_an_unreadable_record_is_named_and_left_out(tmp_path, capsys):
  _write(tmp_path / 'ok', ['sd_dropout'], '1x', 39.8, 60.7)
  _write(tmp_path / 'smoke', [], '1x', 0.0, 0.0)
  record = json.loads((tmp_path / 'smoke' / 'results.json').read_text())
  record.update(complete=False, iterations=2, schedule_iterations=90000)
  (tmp_path / 'smoke' / 'results.json').write_text(json.dumps(record))
  (tmp_path / 'bad').mkdir()
  (tmp_path / 'bad' / 'results.json').write_text('{"kind": "detection", "schedule": "1x"}')
  problems = []
  runs = detection.find_runs([str(tmp_path)], problems)
  assert [r.method for r in runs] == ['sd_dropout']
  assert len(problems) == 2 and 'bad' in problems[0] and 'not a detection record' in problems[0]
  assert 'stopped at iteration 2 of 90000' in problems[1]
  assert report.main([str(tmp_path), '--out', str(tmp_path / 'r.md')]) == 0
  assert 'skipped detection run' in capsys.readouterr().err
