"""Tests for sdd_jax.metrics.plotting: valid PNGs of the expected size, JSON round trips, empty bins."""
import json

import matplotlib.image
import numpy as np
import pytest
from PIL import Image

from sdd_jax.metrics import classification as metrics
from sdd_jax.metrics import plotting

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
E1_CONF = [0.95, 0.92, 0.85, 0.81, 0.66, 0.62, 0.55, 0.45, 0.35, 0.28]
E1_CORRECT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1]


def _e1_table():
  stats = metrics.calibration_bin_stats(np.float32(E1_CONF), np.float32(E1_CORRECT))
  return metrics.ece_from_bin_stats(stats)


def _check_png(path, width, height):
  assert path.read_bytes()[:8] == PNG_MAGIC
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    assert image.format == 'PNG' and image.size == (width, height)
  assert matplotlib.image.imread(path).shape[:2] == (height, width)


@pytest.mark.parametrize('histogram,width', [(True, 900), (False, 450)])
def test_reliability_diagram_png_and_json(tmp_path, histogram, width):
  ece, table = _e1_table()
  png, json_path = plotting.reliability_diagram(table, ece, 10, tmp_path / 'sub' / 'rel.png',
                                                histogram=histogram)
  assert png == tmp_path / 'sub' / 'rel.png' and json_path == tmp_path / 'sub' / 'rel.json'
  _check_png(png, width, 450)
  record = json.loads(json_path.read_text())
  assert record['ece'] == pytest.approx(0.304, abs=1e-6) and record['n'] == 10
  keys = ('lower', 'upper', 'count', 'acc', 'conf')
  assert record['bins'] == [{key: row[key] for key in keys} for row in table]
  assert [row['count'] for row in record['bins']] == [1, 1, 1, 1, 2, 2, 2]


def test_empty_bins_are_not_drawn():
  ece, table = _e1_table()
  with_empty = table + [{'bin': 0, 'lower': 0.0, 'upper': 0.1, 'count': 0, 'acc': 0.0,
                         'conf': 0.0}]
  fig = plotting.create_reliability_figure(with_empty, ece, 10)
  reliability, histogram = fig.axes
  accuracy_bars, gap_bars = reliability.containers
  assert len(accuracy_bars) == len(gap_bars) == 7  # Bins 0, 1 and 7 are empty.
  centres = sorted(bar.get_x() + bar.get_width() / 2 for bar in accuracy_bars)
  np.testing.assert_allclose(centres, [0.25, 0.35, 0.45, 0.55, 0.65, 0.85, 0.95])
  np.testing.assert_allclose([bar.get_width() for bar in accuracy_bars], 0.1)
  np.testing.assert_allclose(sorted(bar.get_height() for bar in accuracy_bars),
                             sorted(row['acc'] for row in table))
  for bar, row in zip(gap_bars, table):  # Gap bars span acc -> conf.
    assert bar.get_y() == pytest.approx(row['acc'])
    assert bar.get_y() + bar.get_height() == pytest.approx(row['conf'])
  assert len(histogram.containers[0]) == 7
  np.testing.assert_allclose(sum(bar.get_height() for bar in histogram.containers[0]), 1.0)
  legend = [text.get_text() for text in reliability.get_legend().get_texts()]
  assert 'ECE = 30.40%, N = 10' in legend


def test_line_plot(tmp_path):
  xs = {'sd_dropout': [0, 1, 2], 'baseline': [0, 1, 2]}
  ys = {'sd_dropout': [0.7, 0.5, 0.3], 'baseline': [0.7, 0.4, 0.2]}
  png, json_path = plotting.line_plot(xs, ys, tmp_path / 'fgsm.png', 'eps', 'accuracy', 'FGSM')
  _check_png(png, 500, 400)
  assert json.loads(json_path.read_text()) == {
      name: {'x': [float(x) for x in xs[name]], 'y': ys[name]} for name in xs}


def test_line_plot_errors(tmp_path):
  with pytest.raises(ValueError, match='xs names'):
    plotting.line_plot({'a': [1]}, {'b': [1]}, tmp_path / 'x.png')
  with pytest.raises(ValueError, match="'a' has 2 x values but 1 y values"):
    plotting.line_plot({'a': [1, 2]}, {'a': [1]}, tmp_path / 'x.png')
