"""The first run (`python -m sdd_jax.demo`): both arms trained, one table, both diagrams."""
import json
import os
import textwrap

import pytest

from sdd_jax import demo

# A config file with the demo's contract (`:ce` is the baseline), shrunk to seconds: one epoch
# of 4 steps on synthetic 16x16 images.
TINY = textwrap.dedent('''
    from configs import common
    from tests import workdirs


    def get_config(arg=None):
      config = workdirs.tiny_config()
      config.num_epochs = 1
      _, flags = common.parse_arg(arg)
      if 'ce' not in flags:
        config.methods.sd_dropout = dict(common.SD_DROPOUT)
      return common.apply_arg(config, arg, known_flags=('ce',))
''')


def test_arm_specs_add_tokens_to_the_config_argument():
  assert demo._spec('configs/demo.py', 'ce', 'seed=3') == 'configs/demo.py:ce,seed=3'
  assert demo._spec('configs/demo.py:smoke', '', 'seed=0') == 'configs/demo.py:smoke,seed=0'
  assert demo._spec('configs/demo.py') == 'configs/demo.py'


def test_table_by_hand():
  rows = [{'title': 'CE', 'test/top1': 98.6111, 'test/nll': 0.0512, 'calibration/ece': 1.004,
           'calibration/confidence': 97.9, 'temperature/t_star': 1.2345,
           'temperature/ece_after': 0.5, 'temperature/nll_after': 0.04},
          {'title': 'CE + TS', 'test/top1': 98.6111, 'test/nll': 0.04, 'calibration/ece': 0.5,
           'calibration/confidence': 98.5, 'temperature/t_star': 1.2345,
           'temperature/ece_after': None, 'temperature/nll_after': None},
          {'title': 'SD-Dropout', 'test/top1': 97.5, 'test/nll': None, 'calibration/ece': 18.7,
           'calibration/confidence': 80.125}]
  assert demo.table(rows) == (
      '| method | top-1 % | NLL | ECE % | confidence % | T* | ECE % after TS | NLL after TS |\n'
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
      '| CE | 98.61 | 0.05 | 1.00 | 97.90 | 1.23 | 0.50 | 0.04 |\n'
      '| CE + TS | 98.61 | 0.04 | 0.50 | 98.50 | 1.23 | n/a | n/a |\n'
      '| SD-Dropout | 97.50 | n/a | 18.70 | 80.12 | n/a | n/a | n/a |')


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  root = tmp_path_factory.mktemp('demo')
  config = root / 'tiny_demo.py'
  config.write_text(TINY)
  workdir = str(root / 'out')
  assert demo.main(['--workdir', workdir, '--config', str(config), '--seed', '1']) == 0
  return workdir


def _summary(path):
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def test_both_arms_train_with_their_own_config(finished):
  ce, sdd = (os.path.join(finished, name) for name in ('ce', 'sd_dropout'))
  assert json.load(open(os.path.join(ce, 'config.json')))['methods'] == {}
  sdd_config = json.load(open(os.path.join(sdd, 'config.json')))
  assert sdd_config['methods']['sd_dropout']['weight'] == 1.0 and sdd_config['seed'] == 1
  assert 'train/loss_sd_dropout' in open(os.path.join(sdd, 'metrics.jsonl')).read()


def test_the_table_and_the_diagrams_are_each_arms_own_results(finished):
  text = open(os.path.join(finished, 'demo.md')).read()
  for title, name in (('CE', 'ce'), ('SD-Dropout', 'sd_dropout')):
    summary = _summary(os.path.join(finished, name, 'summary.json'))
    cells = [f'{summary[key]:.2f}' for key in ('test/top1', 'test/nll', 'calibration/ece',
                                               'calibration/confidence')]
    ts = [f'{summary[key]:.2f}' for key in ('temperature/t_star', 'temperature/ece_after',
                                            'temperature/nll_after')]
    assert f'| {title} | ' + ' | '.join(cells + ts) + ' |' in text
  ce = _summary(os.path.join(finished, 'ce', 'summary.json'))
  scaled = json.load(open(os.path.join(finished, 'ce', 'evals', 'temperature', 'results.json')))
  cells = [ce['test/top1'], ce['temperature/nll_after'], ce['temperature/ece_after'],
           100 * scaled['details']['confidence_after'], ce['temperature/t_star']]
  assert ('| CE + TS | ' + ' | '.join(f'{c:.2f}' for c in cells) + ' | n/a | n/a |') in text
  assert scaled['details']['fit'] == 'cross_fit'  # synthetic data: no validation split
  panels = json.load(open(os.path.join(finished, 'reliability.json')))
  assert list(panels) == ['CE', 'SD-Dropout']
  for title, name in (('CE', 'ce'), ('SD-Dropout', 'sd_dropout')):
    summary = _summary(os.path.join(finished, name, 'summary.json'))
    assert panels[title]['ece'] * 100 == pytest.approx(summary['calibration/ece'])
    bins = panels[title]['bins']
    assert sum(b['count'] for b in bins) == panels[title]['n'] == summary['calibration/count']
    confidence = sum(b['count'] * b['conf'] for b in bins) / panels[title]['n']
    assert 100 * confidence == pytest.approx(summary['calibration/confidence'], rel=1e-5)
  assert os.path.getsize(os.path.join(finished, 'reliability.png')) > 10_000


def test_a_bad_config_is_one_line_and_exit_1(tmp_path, capsys):
  assert demo.main(['--workdir', str(tmp_path / 'w'), '--config', 'configs/nope.py']) == 1
  err = capsys.readouterr().err
  assert err.startswith('error: --config configs/nope.py: no such file') and err.count('\n') == 1
  assert not os.path.exists(tmp_path / 'w')
