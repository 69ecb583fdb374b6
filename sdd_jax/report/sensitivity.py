"""The sensitivity study in the report: SD-Dropout's weight against the pooled dimension D.

Runs of cross-entropy alone and of SD-Dropout alone (at the paper's rate, direction and
position: `report_runs.at_reference`) whose model sets `model.kwargs.width` are tabulated per
data set and model: rows are the pooled dimension D (8 x width for the basic-block ResNets,
32 x width for the bottleneck ones), columns CE and each SD-Dropout weight λ, one table each
for the final test top-1, NLL, ECE and mean confidence, and, where a run of the study has
them (the `temperature` evaluator), ECE and NLL after temperature scaling and T* (mean ± std
over seeds,
`cells.Cell`; bold: the best of each row where Welch's test finds a difference
(`cells.embolden`), except for confidence, where higher is not better). The section shows only where the runs vary the study's fields: at least two values
of D, or at least two SD-Dropout weights (configs/cifar10_sensitivity.py makes such runs); CE
beside one weight at one D (a seed sweep of the two arms) is Table 1's comparison, not a study.

Mean confidence (mean max-softmax, %) is `calibration/confidence` where the run has it; a run
without it (older runs) gets it from the calibration evaluator's reliability bins in
`evals/calibration/results.json` (`details.bins`: per bin `count` and mean confidence `conf`):
100 · Σ count·conf / Σ count.

The figure (`sensitivity.png` next to the report; `sensitivity_2.png` ... for further data set
and model pairs) plots ECE and top-1 against λ, CE at λ = 0, one line per D, bars ± std.
"""
import io
import json
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sdd_jax.workdir import paths as workdir_path
from sdd_jax.report.runs import PLUS_SDD, SDD, Group, Run, at_reference, label
from sdd_jax.report.cells import Cell, embolden, markdown

BOTTLENECK_MODELS = ('resnet50', 'resnet101', 'resnet152')
CE = 'CE'


def pooled_dimension(run: Run) -> Optional[int]:
  """D of a ResNet with `model.kwargs.width` set: 8 · width (32 · width for the bottleneck
  ResNets); None for other models or without a width."""
  width = run.field('model.kwargs.width')
  name = str(run.field('model.name', ''))
  if not isinstance(width, int) or isinstance(width, bool) or 'resnet' not in name:
    return None
  return (32 if any(name.startswith(m) for m in BOTTLENECK_MODELS) else 8) * width


def mean_confidence(run: Run) -> Optional[float]:
  """Mean max-softmax confidence in %: `calibration/confidence`, else from the calibration
  evaluator's bins (Σ count·conf / Σ count); None when neither is there."""
  value = run.metric('calibration/confidence')
  if value is not None:
    return value
  bins = ((run.evals.get('calibration') or {}).get('details') or {}).get('bins')
  if not isinstance(bins, list):
    return None
  pairs = [(b.get('count'), b.get('conf')) for b in bins if isinstance(b, dict)]
  pairs = [(float(n), float(c)) for n, c in pairs if isinstance(n, (int, float))
           and isinstance(c, (int, float)) and math.isfinite(n) and math.isfinite(c)]
  total = sum(n for n, _ in pairs)
  return 100 * sum(n * c for n, c in pairs) / total if total > 0 else None


def _metric(*keys: str) -> Callable[[Run], Optional[float]]:
  def value(run: Run) -> Optional[float]:
    return next((v for v in (run.metric(k) for k in keys) if v is not None), None)
  return value


# (table title, per-run value, which way is better: 'max', 'min' or None)
METRICS = (('top-1 %', _metric('test/top1', 'calibration/top1'), 'max'),
           ('NLL', _metric('test/nll', 'calibration/nll'), 'min'),
           ('ECE %', _metric('test/ece', 'calibration/ece'), 'min'),
           ('mean confidence %', mean_confidence, None),
           # after temperature scaling (`temperature` evaluator), shown where a run has them
           ('ECE % after temperature scaling', _metric('temperature/ece_after'), 'min'),
           ('NLL after temperature scaling', _metric('temperature/nll_after'), 'min'),
           ('T* (fitted temperature)', _metric('temperature/t_star'), None))
OPTIONAL = 4  # METRICS[OPTIONAL:] appear only where some run of the study has them


def column(g: Group) -> Optional[Any]:
  """CE, the SD-Dropout weight λ, or None for a group of the study's kind of neither."""
  if g.field('method') != 'ce' or not at_reference(g, []):
    return None
  if g.field('sd_dropout') != PLUS_SDD:
    return CE
  return float(g.field(f'methods.{SDD}.weight', 1.0))


def study(groups: Sequence[Group]) -> Dict[Tuple[str, str], Dict[Tuple[int, Any], Group]]:
  """{(data set, model name): {(D, column): group}} over the groups that belong to the study;
  where two groups share a cell (e.g. differing in another field), the one with most seeds;
  only pairs with two values of D or two weights."""
  out: Dict[Tuple[str, str], Dict[Tuple[int, Any], Group]] = {}
  for g in groups:
    dim, col = pooled_dimension(g.runs[0]), column(g)
    if dim is None or col is None:
      continue
    cells = out.setdefault((g.field('dataset'), g.field('model.name')), {})
    if (dim, col) not in cells or len(g.runs) > len(cells[(dim, col)].runs):
      cells[(dim, col)] = g
  return {k: v for k, v in out.items()
          if len({d for d, _ in v}) > 1 or len({c for _, c in v if c != CE}) > 1}


def _columns(cells) -> List[Any]:
  weights = sorted({c for _, c in cells if c != CE})
  return ([CE] if any(c == CE for _, c in cells) else []) + weights


def _cell(g: Optional[Group], value: Callable[[Run], Optional[float]]) -> Cell:
  values = [] if g is None else [value(r) for r in g.runs]
  return Cell(tuple(v for v in values if v is not None))


def table(cells: Dict[Tuple[int, Any], Group], value, better: Optional[str]) -> str:
  """Rows D (ascending), columns CE then λ ascending; bold: the best of each row."""
  columns, dims = _columns(cells), sorted({d for d, _ in cells})
  rows = [[f'{d}'] + [_cell(cells.get((d, c)), value) for c in columns] for d in dims]
  if better:
    for r in range(len(rows)):
      embolden(rows, [(r, c + 1) for c in range(len(columns))], lower=better == 'min')
  return markdown(['D'] + [CE if c == CE else f'λ = {c:g}' for c in columns], rows)


def series(cells, value) -> Dict[int, Tuple[List[float], List[float], List[float]]]:
  """{D: (λ values with CE at 0, means, sample stds (0 for one seed))} for the figure."""
  out = {}
  for d in sorted({d for d, _ in cells}):
    xs, means, stds = [], [], []
    for c in _columns(cells):
      got = _cell(cells.get((d, c)), value)
      if got.values:
        n = len(got.values)
        xs.append(0.0 if c == CE else c)
        means.append(got.mean)
        stds.append(math.sqrt(sum((v - got.mean) ** 2 for v in got.values) / (n - 1))
                    if n > 1 else 0.0)
    out[d] = (xs, means, stds)
  return out


def create_figure(cells, title: str) -> Figure:
  """Two panels, ECE % and top-1 % against λ (CE at 0), one line per D."""
  fig = Figure(figsize=(10.0, 4.2), layout='constrained')
  axes = fig.subplots(1, 2)
  for ax, (name, value, _) in zip(axes, (METRICS[2], METRICS[0])):
    for d, (xs, means, stds) in series(cells, value).items():
      ax.errorbar(xs, means, yerr=stds, marker='o', capsize=3, label=f'D = {d}')
    ax.set(xlabel='SD-Dropout weight λ (0: cross-entropy)', ylabel=name, title=name)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(title)
  return fig


def section(groups: Sequence[Group], out_dir: str) -> List[str]:
  """Markdown lines of the sensitivity section (writes its figures to `out_dir`), or []."""
  lines = []
  for index, ((dataset, model), cells) in enumerate(sorted(study(groups).items())):
    name = f'{label("dataset", dataset)}, {label("model.name", model)}'
    seeds = sorted({json.dumps(r.config.get('seed')) for g in cells.values() for r in g.runs})
    lines += [f'## Sensitivity: SD-Dropout weight λ against pooled dimension D ({name})', '',
              f'Rows: D; columns: cross-entropy and SD-Dropout at weight λ; seeds '
              f'{", ".join(seeds)}.', '']
    runs = [r for g in cells.values() for r in g.runs]
    for index_metric, (title, value, better) in enumerate(METRICS):
      if index_metric >= OPTIONAL and all(value(r) is None for r in runs):
        continue
      lines += [f'### {title}', '', table(cells, value, better), '']
    path = workdir_path.path(out_dir) / ('sensitivity.png' if index == 0 else
                                         f'sensitivity_{index + 1}.png')
    path.parent.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    FigureCanvasAgg(create_figure(cells, name)).print_png(png)
    workdir_path.write_bytes(path, png.getvalue())
    lines += [f'![ECE and top-1 against λ, {name}]({path.name})', '']
  return lines
