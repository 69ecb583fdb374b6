"""benchmarks/device_check: its `--smoke` mode end to end on CPU (every section of the JSON, its
arithmetic, the markdown), the one-line error without data, and the bundle's data subset
(deterministic, class-balanced, rows of the source, under its cap) on a small fake folder."""
import json
import os

import numpy as np
import pytest

from benchmarks.device_check import __main__ as device_check
from benchmarks.device_check import bundle

CLASSES = 10
NAMES = np.array([f'class{c}' for c in range(CLASSES)])


def _fake_cifar(folder, per_class: dict, seed: int = 0):
  """`<folder>/{train,test}.npz` like ../shared/data/cifar10's: x uint8 [N, 32, 32, 3], y int32,
  label_names; labels shuffled so that subsetting has something to sort."""
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  for split, count in per_class.items():
    labels = rng.permutation(np.repeat(np.arange(CLASSES, dtype=np.int32), count))
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), np.uint8)
    np.savez(os.path.join(folder, f'{split}.npz'), x=images, y=labels, label_names=NAMES)
  return str(folder)


def test_smoke_writes_every_section_with_consistent_figures(tmp_path, capsys):
  data = _fake_cifar(tmp_path / 'data', {'train': 8, 'test': 4})
  out = tmp_path / 'out'
  assert device_check.main(['--out', str(out), '--smoke', '--data', data,
                            '--assume_peak_tflops', '1']) == 0
  result = json.loads((out / 'device_check.json').read_text())
  assert {'environment', 'peak', 'classification', 'pipeline', 'translation', 'training',
          'skipped'} <= set(result)
  assert result['skipped'] == {}
  assert result['environment']['device_count'] >= 1
  assert result['peak'] == {'flops_per_device': 1e12,
                            'source': 'assumed: --assume_peak_tflops=1.0'}
  peak = 1e12 * result['environment']['device_count']
  step = result['classification']
  assert list(step['variants']) == ['ce', 'sd_dropout']
  for row in step['variants'].values():
    assert row['per_sec'] > 0 and row['compile_s'] > 0 and row['flops_per_step'] > 0
    assert row['per_sec'] == pytest.approx(step['batch'] / (row['step_ms'] / 1000))
    assert row['mfu'] == pytest.approx(row['flops_per_step'] / (row['step_ms'] / 1000) / peak)
    assert 0 < row['mfu'] <= 1
    assert row['memory']['argument_bytes'] > 0 and row['memory']['temp_bytes'] > 0
  assert step['variants']['ce']['step_time_vs_ce'] == 1.0
  pipe = result['pipeline']
  assert pipe['images_per_sec'] > 0 and pipe['train_examples'] == 8 * CLASSES
  assert pipe['pipeline_over_step'] == pytest.approx(
      pipe['images_per_sec'] / step['variants']['ce']['per_sec'])
  text = result['translation']
  assert text['tokens_per_side'] == 8 * 8  # SMOKE: 8 sentences x 8 tokens
  assert text['tokens_per_sec'] == pytest.approx(64 / (text['step_ms'] / 1000))
  assert 0 < text['mfu'] <= 1
  runs = result['training']['runs']
  assert list(runs) == ['ce', 'sd_dropout_w1', 'sd_dropout_w0.25']
  for row in runs.values():
    assert 0 <= row['top1'] <= 100 and 0 <= row['ece'] <= 1 and row['nll'] > 0
    # 40 test images: top-1 is a multiple of 100 / 40 = 2.5 %
    assert row['top1'] / 2.5 == pytest.approx(round(row['top1'] / 2.5))
  markdown = (out / 'device_check.md').read_text()
  for heading in ('## Train step', '## Host input pipeline', '## Translation step',
                  '## Training'):
    assert heading in markdown
  assert '| sd_dropout_w0.25 |' in markdown and markdown in capsys.readouterr().out


def test_missing_data_is_one_error_line_and_writes_nothing(tmp_path, capsys):
  out = tmp_path / 'out'
  assert device_check.main(['--out', str(out), '--smoke', '--data',
                            str(tmp_path / 'absent')]) == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith('error: ')
  assert 'python -m benchmarks.device_check.bundle' in err
  assert not out.exists()


def test_bundle_subset_is_deterministic_balanced_and_from_the_source(tmp_path):
  src = _fake_cifar(tmp_path / 'shared', {'train': 30, 'test': 12}, seed=1)
  first = bundle.make_data(src, str(tmp_path / 'a'), train_per_class=5, test_per_class=2)
  second = bundle.make_data(src, str(tmp_path / 'b'), train_per_class=5, test_per_class=2)
  assert first == second
  # bytes from arithmetic: per image 32*32*3 pixels + an int32 label; the names twice
  names = 2 * NAMES.nbytes
  assert first['bytes'] == (5 + 2) * CLASSES * (32 * 32 * 3 + 4) + names
  for split, per_class in (('train', 5), ('test', 2)):
    with np.load(os.path.join(src, f'{split}.npz')) as source, \
        np.load(tmp_path / 'a' / f'{split}.npz') as subset:
      np.testing.assert_array_equal(np.bincount(subset['y'], minlength=CLASSES),
                                    [per_class] * CLASSES)
      rows = {source['x'][i].tobytes(): source['y'][i] for i in range(len(source['y']))}
      assert all(rows[x.tobytes()] == y for x, y in zip(subset['x'], subset['y']))
      np.testing.assert_array_equal(subset['label_names'], NAMES)
    assert first['splits'][split]['examples'] == per_class * CLASSES


def test_bundle_refuses_a_subset_over_its_cap_and_the_default_fits(tmp_path, monkeypatch):
  # the committed sizes: 1,200 CIFAR images a class of 3,076 bytes (pixels + label), 10 classes
  assert (bundle.TRAIN_PER_CLASS + bundle.TEST_PER_CLASS) * CLASSES * 3076 < 40 * 2**20
  src = _fake_cifar(tmp_path / 'shared', {'train': 3, 'test': 3})
  monkeypatch.setattr(bundle, 'MAX_DATA_BYTES', 1000)
  with pytest.raises(bundle.BundleError, match='over the 0 MiB cap; ask for fewer'):
    bundle.make_data(src, str(tmp_path / 'out'), train_per_class=1, test_per_class=1)
  assert not (tmp_path / 'out').exists()
  with pytest.raises(bundle.BundleError, match='pass --src'):
    bundle.make_data(str(tmp_path / 'absent'), str(tmp_path / 'out'))
