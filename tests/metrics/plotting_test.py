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
  accuracy_bars = reliability.containers[0]
  assert len(accuracy_bars) == 7  # Bins 0, 1 and 7 are empty.
  centres = sorted(bar.get_x() + bar.get_width() / 2 for bar in accuracy_bars)
  np.testing.assert_allclose(centres, [0.25, 0.35, 0.45, 0.55, 0.65, 0.85, 0.95])
  np.testing.assert_allclose([bar.get_width() for bar in accuracy_bars], 0.1)
  np.testing.assert_allclose(sorted(bar.get_height() for bar in accuracy_bars),
                             sorted(row['acc'] for row in table))


def _segments(ax, label):
  """{bin centre: (bottom, top)} of the bar container labelled `label`."""
  container, = [c for c in ax.containers if c.get_label() == label]
  return {round(bar.get_x() + bar.get_width() / 2, 6): (bar.get_y(), bar.get_y() + bar.get_height())
          for bar in container}


def test_gaps_read_in_both_directions():
  """Each bin: an accuracy bar from 0 to acc; over-confidence (conf > acc) a segment from acc
  up to conf above it; under-confidence (conf < acc) a segment from conf up to acc, never
  reaching above the bar; heights positive. Checked against the bin table of E1 (both kinds)."""
  ece, table = _e1_table()
  ax = plotting.create_reliability_figure(table, ece, 10).axes[0]
  centre = lambda row: round((row['lower'] + row['upper']) / 2, 6)
  bars = {round(b.get_x() + b.get_width() / 2, 6): b for b in ax.containers[0]}
  over, under = _segments(ax, plotting.OVER), _segments(ax, plotting.UNDER)
  expect_over = {centre(r): (r['acc'], r['conf']) for r in table if r['conf'] > r['acc']}
  expect_under = {centre(r): (r['conf'], r['acc']) for r in table if r['conf'] < r['acc']}
  assert len(expect_over) == 4 and len(expect_under) == 3  # E1 has both directions
  assert over.keys() == expect_over.keys() and under.keys() == expect_under.keys()
  for got, want in ((over, expect_over), (under, expect_under)):
    for key, (bottom, top) in want.items():
      assert got[key] == pytest.approx((bottom, top), abs=1e-6)
      assert top > bottom
  for row in table:  # the bar's top is the accuracy, whatever the direction
    bar = bars[centre(row)]
    assert (bar.get_y(), bar.get_height()) == pytest.approx((0.0, row['acc']))
  # The under-confident SD-Dropout panel of the demo (README): acc 0.99 at conf 0.75.
  demo = [{'lower': 0.7, 'upper': 0.8, 'count': 300, 'acc': 0.99, 'conf': 0.75}]
  ax = plotting.create_reliability_figure(demo, 0.24, 300, histogram=False).axes[0]
  assert ax.containers[0][0].get_height() == pytest.approx(0.99)
  assert _segments(ax, plotting.UNDER) == {0.75: pytest.approx((0.75, 0.99))}
  assert _segments(ax, plotting.OVER) == {}
  # Drawn over the bar's top, the under-confidence segment must not hide it: no fill (the
  # bar still shows up to acc), only hatching; the legend names both kinds with their colours.
  (segment,) = [c for c in ax.containers if c.get_label() == plotting.UNDER][0]
  assert segment.get_facecolor()[3] == 0.0 and segment.get_hatch()
  legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(),
                                            ax.get_legend().legend_handles)}
  assert legend[plotting.OVER].get_facecolor()[:3] == pytest.approx((0.84, 0.15, 0.16))
  assert legend[plotting.UNDER].get_facecolor()[3] == 0.0


def test_panels_carry_both_curves(tmp_path):
  ece, table = _e1_table()
  scaled = [{**row, 'conf': row['acc']} for row in table]
  png, json_path = plotting.reliability_panels(
      {'before': (table, ece, 10), 'after': (scaled, 0.0, 10)}, tmp_path / 'ts.png',
      curves={'raw': table, 'scaled': scaled})
  _check_png(png, 900, 450)
  assert sorted(json.loads(json_path.read_text())) == ['after', 'before']


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
