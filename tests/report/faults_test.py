"""`python -m sdd_jax.report` on a run with a damaged file (issue 11): generated over every file
the report reads x every fault. A run that cannot be read is skipped with one stderr line naming
it and the file; a bad line of metrics.jsonl skips only that line; the other runs are tabulated
as worked out by hand below; the exit status is 0 (1 only when nothing is readable)."""
import json
import os

import pytest

from sdd_jax import report
from sdd_jax.report import probe as report_probe

SDD = dict(weight=1.0, temperature=3.0, rate=0.5, direction='both', num_samples=2, position=4)
# Probe values (fraction, mean |r|, r1) at steps 1, 5, 10 of each Cross-Entropy seed.
PROBES = {0: {1: (0.5, 0.1, 0.0), 5: (0.6, 0.2, 0.1), 10: (0.7, 0.3, 0.2)},
          1: {1: (0.7, 0.3, 0.2), 5: (0.8, 0.4, 0.3), 10: (0.9, 0.5, 0.4)}}
VICTIM = 'ce/s1'  # every fault hits a file of this run


def _write_run(root, name, seed, top1, ece, methods=None):
  workdir = os.path.join(root, name)
  os.makedirs(os.path.join(workdir, 'evals', 'calibration'))
  config = {'seed': seed, 'data': {'source': 'tfds', 'name': 'cifar100'},
            'model': {'name': 'resnet18_cifar', 'head_hidden': []}, 'methods': methods or {}}
  files = {'config.json': config,
           'summary.json': {'test/top1': top1, 'steps': 10, 'epochs': 2},
           'evals/calibration/results.json': {'evaluator': 'calibration',
                                              'metrics': {'calibration/ece': ece}}}
  for path, value in files.items():
    with open(os.path.join(workdir, path), 'w', encoding='utf-8') as f:
      json.dump(value, f, indent=2)  # several lines, so that one of them can be bad
  if seed in PROBES and not methods:
    with open(os.path.join(workdir, 'metrics.jsonl'), 'w', encoding='utf-8') as f:
      f.write(json.dumps({'step': 1, 'train/loss': 2.0}) + '\n')
      for step, (fraction, r, r1) in PROBES[seed].items():
        f.write(json.dumps({'step': step, 'probe/assumption1_fraction': fraction,
                            'probe/mean_abs_r': r, 'probe/r1': r1, 'probe/grad_cosine': 0.5,
                            'probe/grad_l1_forward': 1.0, 'probe/grad_l1_reverse': 2.0}) + '\n')


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
  """Figure 4 is drawn elsewhere (report_probe_test); here only the tables matter (and time)."""
  monkeypatch.setattr(report_probe.plotting, 'line_plot', lambda *args, **kwargs: None)


def _root(tmp_path):
  root = str(tmp_path / 'runs')
  _write_run(root, 'ce/s0', 0, 70.0, 10.0)
  _write_run(root, 'ce/s1', 1, 72.0, 12.0)
  _write_run(root, 'sdd/s0', 0, 75.0, 8.0, methods={'sd_dropout': SDD})
  return root


# --- the faults: content -> damaged content (None: delete the file) ---------------------------

def _bad_line(text):
  """The third line replaced by garbage (in metrics.jsonl: the step-5 probe record)."""
  lines = text.split('\n')
  lines[2] = '  "oops": [1,'
  return '\n'.join(lines)


FAULTS = {
    'missing': lambda text: None,
    'truncated': lambda text: text[:-12],  # a kill mid-write: the last record cut short
    'garbage': lambda text: '\x00\x01\ufffd not json at all',
    'wrong_type': lambda text: '[1, 2, 3]\n',  # valid JSON, not an object
    'bad_line': _bad_line,
}
FILES = ('config.json', 'summary.json', 'evals/calibration/results.json', 'metrics.jsonl')

# --- the tables, by hand ----------------------------------------------------------------------
# Table 1 (Cross-Entropy row). Both CE seeds: mean(70, 72) = 71, std sqrt(2) = 1.41; +SD-Dropout
# (λ=1, SD-Dropout alone) 75 with its gain, one seed: never bold. Without seed 1's top-1: 70, +5.
TOP1_BOTH = '| Cross-Entropy | 71.00 ± 1.41 (n=2) | 75.00 (+4.00) (λ=1) (n=1) |'
TOP1_S0 = '| Cross-Entropy | 70.00 (n=1) | 75.00 (+5.00) (λ=1) (n=1) |'
# Calibration: ECE 10 and 12 -> 11 ± 1.41; +SD-Dropout 8 (one seed, not bold); no NLL.
ECE_BOTH = '| CIFAR-100 | Cross-Entropy | 11.00 ± 1.41 (n=2) | 8.00 (-3.00) (λ=1) (n=1) | – | – |'
ECE_S0 = '| CIFAR-100 | Cross-Entropy | 10.00 (n=1) | 8.00 (-2.00) (λ=1) (n=1) | – | – |'
# Table 8: 10 steps = 2 epochs; epochs 0, 1, 2 -> steps 0, 5, 10 -> records 1, 5, 10. Two seeds:
# means of PROBES[0] and PROBES[1], sample std |a - b| / sqrt(2) = 0.2 / 1.414 = 0.14.
TABLE8_BOTH = [['0', '0.60 ± 0.14 (n=2)', '0.20 ± 0.14 (n=2)', '0.10 ± 0.14 (n=2)'],
               ['1', '0.70 ± 0.14 (n=2)', '0.30 ± 0.14 (n=2)', '0.20 ± 0.14 (n=2)'],
               ['2', '0.80 ± 0.14 (n=2)', '0.40 ± 0.14 (n=2)', '0.30 ± 0.14 (n=2)']]
TABLE8_S0 = [['0', '0.50 (n=1)', '0.10 (n=1)', '0.00 (n=1)'],
             ['1', '0.60 (n=1)', '0.20 (n=1)', '0.10 (n=1)'],
             ['2', '0.70 (n=1)', '0.30 (n=1)', '0.20 (n=1)']]
# Seed 1 without its step-5 line: epoch 1 (step 5) takes step 1, the nearer of 1 and 10:
# (0.6 + 0.7) / 2, (0.2 + 0.3) / 2, (0.1 + 0.2) / 2, std 0.1 / 1.414 = 0.07.
TABLE8_NO5 = [TABLE8_BOTH[0], ['1', '0.65 ± 0.07 (n=2)', '0.25 ± 0.07 (n=2)',
                               '0.15 ± 0.07 (n=2)'], TABLE8_BOTH[2]]
# Seed 1 without its step-10 line (truncated): epoch 2 takes step 5: (0.7 + 0.8) / 2, ...
TABLE8_NO10 = TABLE8_BOTH[:2] + [['2', '0.75 ± 0.07 (n=2)', '0.35 ± 0.07 (n=2)',
                                  '0.25 ± 0.07 (n=2)']]
RUNS_BOTH = '- CIFAR-100, Cross-Entropy Base, n=2: [seed 0](../runs/ce/s0), [seed 1](../runs/ce/s1)'
RUNS_S0 = '- CIFAR-100, Cross-Entropy Base, n=1: [seed 0](../runs/ce/s0)'

SKIPPED = dict(top1=TOP1_S0, ece=ECE_S0, table8=TABLE8_S0, runs=RUNS_S0)
INTACT = dict(top1=TOP1_BOTH, ece=ECE_BOTH, table8=TABLE8_BOTH, runs=RUNS_BOTH)
# (file, fault) -> (the tables, what the stderr line says; None: no line).
EXPECTED = {}
for _fault in FAULTS:
  for _file in FILES[:3]:
    EXPECTED[(_file, _fault)] = (SKIPPED, f'skipped run {{root}}/ce/s1: {_file}: ')
EXPECTED[('config.json', 'missing')] = (
    SKIPPED, 'skipped {root}/ce/s1: no config.json (it holds summary.json, metrics.jsonl)')
EXPECTED[('summary.json', 'missing')] = (dict(INTACT, top1=TOP1_S0), None)
EXPECTED[('evals/calibration/results.json', 'missing')] = (dict(INTACT, ece=ECE_S0), None)
_LINES = 'skipped {n} unreadable line{s} of {of} in {{root}}/ce/s1/metrics.jsonl (line {k}: '
EXPECTED.update({
    ('metrics.jsonl', 'missing'): (dict(INTACT, table8=TABLE8_S0), None),
    ('metrics.jsonl', 'truncated'): (dict(INTACT, table8=TABLE8_NO10),
                                     _LINES.format(n=1, s='', of=4, k=4) + 'not JSON'),
    ('metrics.jsonl', 'garbage'): (dict(INTACT, table8=TABLE8_S0),
                                   _LINES.format(n=1, s='', of=1, k=1) + 'not JSON'),
    ('metrics.jsonl', 'wrong_type'): (dict(INTACT, table8=TABLE8_S0),
                                      _LINES.format(n=1, s='', of=1, k=1) + 'a JSON array, '
                                      'not an object)'),
    ('metrics.jsonl', 'bad_line'): (dict(INTACT, table8=TABLE8_NO5),
                                    _LINES.format(n=1, s='', of=4, k=3) + 'not JSON'),
})


def _damage(root, path, fault):
  path = os.path.join(root, VICTIM, path)
  with open(path, encoding='utf-8') as f:
    damaged = FAULTS[fault](f.read())
  os.remove(path)
  if damaged is not None:
    with open(path, 'w', encoding='utf-8') as f:
      f.write(damaged)


def _rows(text, start):
  return [line for line in text.splitlines() if line.startswith(start)]


def test_the_undamaged_runs_give_the_tables_by_hand(tmp_path, capsys):
  root = _root(tmp_path)
  out = str(tmp_path / 'out' / 'report.md')
  assert report.main([root, '--out', out]) == 0
  assert capsys.readouterr().err == ''
  _check(open(out, encoding='utf-8').read(), INTACT)


def _check(text, want):
  assert _rows(text, '| Cross-Entropy |') == [want['top1']]
  assert _rows(text, '| CIFAR-100 | Cross-Entropy |') == [want['ece']]
  tables = text.split('## Configurations')[0]  # whose rows also start with the group's name
  table8 = [line.split(' | ')[1:] for line in _rows(tables, '| CIFAR-100, Cross-Entropy Base |')]
  assert [row[:-1] + [row[-1].rstrip(' |')] for row in table8] == want['table8']
  assert _rows(text, '- CIFAR-100, Cross-Entropy Base') == [want['runs']]
  assert '](../runs/sdd/s0)' in text  # the other runs are all there


@pytest.mark.parametrize('path, fault', sorted(EXPECTED))
def test_a_damaged_file_skips_what_it_must_and_says_so(tmp_path, capsys, path, fault):
  root = _root(tmp_path)
  _damage(root, path, fault)
  out = str(tmp_path / 'out' / 'report.md')
  assert report.main([root, '--out', out]) == 0
  want, line = EXPECTED[(path, fault)]
  captured = capsys.readouterr()
  errors = captured.err.splitlines()
  if line is None:
    assert errors == []
  else:
    assert len(errors) == 1 and errors[0].startswith(line.format(root=root)), errors
  _check(open(out, encoding='utf-8').read(), want)
  skipped = 'skipped run' in (line or '') or path == 'config.json'
  assert captured.out.strip() == f'{out}: {3 - skipped} runs' + (
      ' (1 unreadable left out)' if skipped and fault != 'missing' else '')


@pytest.mark.parametrize('fault', ['truncated', 'garbage', 'wrong_type'])
def test_nothing_readable_exits_1_and_writes_nothing(tmp_path, capsys, fault):
  root = str(tmp_path / 'runs')
  _write_run(root, 'only', 0, 70.0, 10.0)
  path = os.path.join(root, 'only', 'summary.json')
  text = open(path, encoding='utf-8').read()
  with open(path, 'w', encoding='utf-8') as f:
    f.write(FAULTS[fault](text))
  out = str(tmp_path / 'report.md')
  assert report.main([root, '--out', out]) == 1
  errors = capsys.readouterr().err.splitlines()
  assert len(errors) == 2 and errors[0].startswith(f'skipped run {root}/only: summary.json: ')
  assert errors[1] == f'error: no readable run in {root} (1 unreadable, named above)'
  assert not os.path.exists(out)


def test_sections_of_the_wrong_type_are_unreadable(tmp_path, capsys):
  """Valid JSON objects whose parts have the wrong type: each run is skipped, named."""
  root = _root(tmp_path)
  bad = {'config.json': ({'seed': 1, 'methods': []}, 'config.json: "methods" is a JSON array, '
                         'not an object'),
         'summary.json': ({'steps': 'ten'}, 'summary.json: "steps" is a JSON string, not a '
                          'number'),
         'evals/calibration/results.json': ({'metrics': [1]}, 'evals/calibration/results.json: '
                                            '"metrics" is a JSON array, not an object')}
  for index, (path, (value, message)) in enumerate(bad.items()):
    with open(os.path.join(root, VICTIM, path), 'w', encoding='utf-8') as f:
      json.dump(value, f)
    assert report.main([root, '--out', str(tmp_path / 'r.md')]) == 0
    assert capsys.readouterr().err.splitlines() == [f'skipped run {root}/ce/s1: {message}']
    fresh = str(tmp_path / f'fresh{index}')
    _write_run(fresh, 'ce/s1', 1, 72.0, 12.0)  # restore the file
    os.replace(os.path.join(fresh, 'ce/s1', path), os.path.join(root, VICTIM, path))
  os.remove(os.path.join(root, VICTIM, 'summary.json'))
  os.mkdir(os.path.join(root, VICTIM, 'summary.json'))  # not a file at all
  assert report.main([root, '--out', str(tmp_path / 'r.md')]) == 0
  assert capsys.readouterr().err.splitlines() == [
      f'skipped run {root}/ce/s1: summary.json: unreadable (IsADirectoryError: [Errno 21] Is a '
      f"directory: '{root}/ce/s1/summary.json')"]
  os.rmdir(os.path.join(root, VICTIM, 'summary.json'))
  with open(os.path.join(root, VICTIM, 'config.json'), 'w', encoding='utf-8') as f:
    json.dump({'seed': 1, 'methods': {'feature_dropout': {'samples': 'two'}}}, f)
  assert report.main([root, '--out', str(tmp_path / 'r.md')]) == 0
  assert capsys.readouterr().err.splitlines() == [
      f'skipped run {root}/ce/s1: config.json: cannot read the field dropout (ValueError: '
      "invalid literal for int() with base 10: 'two')"]
