"""Reliability diagrams and curves (docs/evaluation.md §2, §0.7): a PNG plus a JSON of every number.

Figures are built as `matplotlib.figure.Figure` with the Agg canvas, so nothing touches global
pyplot state (no backend switch, no open-figure registry) and plotting works headless.
"""
import io
from typing import Mapping, Optional, Sequence, Tuple

from etils import epath
from matplotlib import patches
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path

_BIN_KEYS = ('lower', 'upper', 'count', 'acc', 'conf')


def _save(fig: Figure, path, record: dict) -> Tuple[epath.Path, epath.Path]:
  """Writes the PNG at `path` (a local path or a `gs://` URI) and `record` as JSON next to it
  (same stem, `.json`)."""
  path = workdir_path.path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  png = io.BytesIO()
  FigureCanvasAgg(fig).print_png(png)
  workdir_path.write_bytes(path, png.getvalue())
  json_path = path.with_suffix('.json')
  workdir_path.write_text(json_path, jsonio.dumps(record, indent=2))
  return path, json_path


OVER, UNDER = 'over-confidence (conf > acc)', 'under-confidence (conf < acc)'
# Over-confidence sits above the accuracy bar: a light red fill. Under-confidence lies inside
# the bar (between conf and acc): hatching only, no fill, so the blue bar still reaches acc.
_GAP_FILL = {OVER: (0.84, 0.15, 0.16, 0.35), UNDER: 'none'}


def _draw_reliability(ax, table: Sequence[Mapping], ece: float, n: int, title: str,
                      curves: Optional[Mapping[str, Sequence[Mapping]]] = None) -> None:
  """For the non-empty bins of `table`: accuracy bars from 0 to acc (the axes' first bar
  container, label 'accuracy'); the gap as its own segment between acc and conf, labelled by
  its direction: `OVER` (conf > acc: hatched red, from acc up to conf, above the bar) and
  `UNDER` (conf < acc: green hatching without fill, from conf up to acc, over the top of the
  bar, which stays visible up to acc); a black tick
  at each bin's mean confidence; the diagonal; ECE and N in the legend. `curves`: {label:
  table} drawn as lines through (conf, acc) of their non-empty bins (e.g. before and after
  temperature scaling)."""
  rows = [row for row in table if row['count'] > 0]
  centres = [(row['lower'] + row['upper']) / 2 for row in rows]
  widths = [row['upper'] - row['lower'] for row in rows]
  ax.bar(centres, [row['acc'] for row in rows], width=widths, color='tab:blue',
         edgecolor='black', label='accuracy')
  for label, sign, colour, hatch in ((OVER, 1, 'tab:red', '//'), (UNDER, -1, 'tab:green', '\\\\')):
    picked = [(c, w, row) for c, w, row in zip(centres, widths, rows)
              if sign * (row['conf'] - row['acc']) > 0]
    ax.bar([c for c, _, _ in picked], [abs(row['conf'] - row['acc']) for _, _, row in picked],
           bottom=[min(row['conf'], row['acc']) for _, _, row in picked],
           width=[w for _, w, _ in picked], facecolor=_GAP_FILL[label], edgecolor=colour,
           hatch=hatch, label=label)
  ax.hlines([row['conf'] for row in rows], [c - w / 2 for c, w in zip(centres, widths)],
            [c + w / 2 for c, w in zip(centres, widths)], colors='black', linewidth=2,
            label='mean confidence')
  ax.plot([0, 1], [0, 1], linestyle='--', color='gray', label='perfect calibration')
  for (label, curve), colour in zip((curves or {}).items(), ('black', 'tab:purple', 'tab:orange')):
    points = [row for row in curve if row['count'] > 0]
    ax.plot([row['conf'] for row in points], [row['acc'] for row in points], marker='o',
            markersize=3, color=colour, linewidth=1, label=f'curve: {label}')
  ax.plot([], [], linestyle='none', label=f'ECE = {100 * ece:.2f}%, N = {n}')
  ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='confidence', ylabel='accuracy', title=title)
  # Both gap kinds in every legend, with their own swatch (an empty bar container would
  # otherwise take the default colour, or be left out).
  handles = {label: handle for handle, label in zip(*ax.get_legend_handles_labels())}
  for label, colour, hatch in ((OVER, 'tab:red', '//'), (UNDER, 'tab:green', '\\\\')):
    handles[label] = patches.Patch(facecolor=_GAP_FILL[label], edgecolor=colour, hatch=hatch,
                                   label=label)
  ax.legend(handles=list(handles.values()), labels=list(handles), loc='upper center',
            bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize='x-small')


def create_reliability_figure(table: Sequence[Mapping], ece: float, n: int,
                              histogram: bool = True) -> Figure:
  """Reliability diagram (§2; Guo et al. 2017) from `metrics.ece_from_bin_stats`' table.

  Args:
    table: per-bin dicts with `lower`, `upper`, `count`, `acc`, `conf`; bins with count 0 are
      skipped (empty bins are not drawn).
    ece: ECE as a fraction; the legend shows it in %.
    n: number of examples, shown in the legend and used for the histogram |B_m| / N.
    histogram: add a second panel with the confidence histogram.
  Returns:
    The figure: axes[0] holds the accuracy bars (first bar container), then the over- and the
    under-confidence segments (containers labelled `OVER` and `UNDER`).
  """
  rows = [row for row in table if row['count'] > 0]
  centres = [(row['lower'] + row['upper']) / 2 for row in rows]
  widths = [row['upper'] - row['lower'] for row in rows]

  fig = Figure(figsize=(9.0 if histogram else 4.5, 4.5), layout='constrained')
  axes = fig.subplots(1, 2 if histogram else 1, squeeze=False)[0]
  _draw_reliability(axes[0], table, ece, n, 'Reliability diagram')
  if histogram:
    hist = axes[1]
    hist.bar(centres, [row['count'] / n for row in rows], width=widths, color='tab:gray',
             edgecolor='black')
    hist.set(xlim=(0, 1), xlabel='confidence', ylabel='fraction of examples |B_m| / N',
             title='Confidence histogram')
  return fig


def reliability_diagram(table: Sequence[Mapping], ece: float, n: int, path,
                        histogram: bool = True) -> Tuple[epath.Path, epath.Path]:
  """Saves the reliability diagram PNG at `path` and its numbers as `<stem>.json` (§2, §0.7).

  The JSON is `{"ece": fraction, "n": N, "bins": [{lower, upper, count, acc, conf}, ...]}`
  over the non-empty bins. Returns (png path, json path).
  """
  fig = create_reliability_figure(table, ece, n, histogram)
  bins = [{key: row[key] for key in _BIN_KEYS} for row in table if row['count'] > 0]
  return _save(fig, path, {'ece': float(ece), 'n': int(n), 'bins': bins})


def reliability_panels(panels: Mapping[str, tuple], path,
                       curves: Optional[Mapping[str, Sequence[Mapping]]] = None
                       ) -> Tuple[epath.Path, epath.Path]:
  """One reliability diagram per entry of `panels` ({title: (table, ece, n)}, or (table, ece,
  n, that panel's curves)), side by side in one PNG at `path`, and their numbers as
  `<stem>.json` ({title: {ece, n, bins}}). `curves` ({label: table}): lines drawn on every
  panel without its own (e.g. before and after temperature scaling)."""
  fig = Figure(figsize=(4.5 * len(panels), 4.5), layout='constrained')
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  record = {}
  for ax, (title, (table, ece, n, *own)) in zip(axes, panels.items()):
    _draw_reliability(ax, table, ece, n, title, own[0] if own else curves)
    record[title] = {'ece': float(ece), 'n': int(n), 'bins': [
        {key: row[key] for key in _BIN_KEYS} for row in table if row['count'] > 0]}
  return _save(fig, path, record)


def line_plot(xs_by_name: Mapping[str, Sequence[float]],
              ys_by_name: Mapping[str, Sequence[float]], path, xlabel: str = '',
              ylabel: str = '', title: str = '',
              logx: bool = False) -> Tuple[epath.Path, epath.Path]:
  """One line per name (e.g. accuracy vs FGSM ε per method); PNG at `path` plus `<stem>.json`.

  Args:
    xs_by_name: name -> `[points]` x values.
    ys_by_name: name -> `[points]` y values; same names and lengths as `xs_by_name`.
    path: PNG path.
    xlabel, ylabel, title: axis labels and title.
    logx: logarithmic x axis.
  Returns:
    (png path, json path); the JSON is `{name: {"x": [...], "y": [...]}}`.
  """
  if set(xs_by_name) != set(ys_by_name):
    raise ValueError(f'line_plot: xs names {sorted(xs_by_name)} != ys names {sorted(ys_by_name)}')
  record = {}
  fig = Figure(figsize=(5.0, 4.0), layout='constrained')
  ax = fig.subplots()
  for name, xs in xs_by_name.items():
    xs, ys = [float(x) for x in xs], [float(y) for y in ys_by_name[name]]
    if len(xs) != len(ys):
      raise ValueError(f'line_plot: {name!r} has {len(xs)} x values but {len(ys)} y values')
    ax.plot(xs, ys, marker='o', label=name)
    record[name] = {'x': xs, 'y': ys}
  if logx:
    ax.set_xscale('log')
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  ax.grid(alpha=0.3)
  if record:
    ax.legend()
  return _save(fig, path, record)
