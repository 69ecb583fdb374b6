"""Table 8 and Figure 4 of the report, from fake workdirs with known probe logs."""
import json
import os

from sdd_jax import report


def _workdir(root, name, seed, direction, probes):
  path = os.path.join(root, name)
  os.makedirs(path)
  config = {'seed': seed, 'model': {'name': 'resnet18_cifar', 'head_hidden': []},
            'data': {'source': 'tfds', 'name': 'cifar100'},
            'methods': {'sd_dropout': {'rate': 0.5, 'weight': 1.0, 'direction': direction,
                                       'position': 4}}}
  with open(os.path.join(path, 'config.json'), 'w') as f:
    json.dump(config, f)
  with open(os.path.join(path, 'summary.json'), 'w') as f:
    json.dump({'test/top1': 77.0}, f)
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    f.write(json.dumps({'step': 1, 'train/loss': 2.0}) + '\n')
    for step, (fraction, r, r1, cosine) in probes:
      f.write(json.dumps({'step': step, 'probe/assumption1_fraction': fraction,
                          'probe/mean_abs_r': r, 'probe/r1': r1, 'probe/grad_cosine': cosine,
                          'probe/grad_l1_forward': 1.0, 'probe/grad_l1_reverse': 2.0}) + '\n')
  return path


def test_table8_averages_steps_then_seeds_and_figure4_is_drawn(tmp_path):
  root = str(tmp_path / 'runs')
  # Seed 0: step means 0.6 / 0.2 / 0.1; seed 1: 0.8 / 0.4 / 0.3 -> means 0.70, 0.30, 0.20 and
  # sample std 0.1414 for each.
  _workdir(root, 'a', 0, 'both', [(2, (0.5, 0.1, 0.0, 0.9)), (4, (0.7, 0.3, 0.2, 0.8))])
  _workdir(root, 'b', 1, 'both', [(2, (0.8, 0.4, 0.3, 0.9)), (4, (0.8, 0.4, 0.3, 0.7))])
  _workdir(root, 'c', 0, 'forward', [])  # not probed: no row
  out = str(tmp_path / 'out')
  os.makedirs(out)
  text = report.render(report.load_runs([root]), out)
  section = text[text.index('## KL-direction analysis'):]
  rows = [line for line in section.splitlines() if line.startswith('| CIFAR-100')]
  assert len(rows) == 1
  assert '0.70 ± 0.14' in rows[0] and '0.30 ± 0.14' in rows[0] and '0.20 ± 0.14' in rows[0]
  for index in (0, 1):
    png = os.path.join(out, f'figure4_{index}.png')
    assert open(png, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    assert f'](figure4_{index}.png)' in section


def test_no_probe_logs_no_section(tmp_path):
  root = str(tmp_path / 'runs')
  _workdir(root, 'a', 0, 'both', [])
  assert 'KL-direction' not in report.render(report.load_runs([root]), str(tmp_path))
