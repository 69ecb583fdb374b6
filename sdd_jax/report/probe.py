"""The KL-direction analysis in the report: Table 8 and Figure 4 from the probe's logs.

Runs trained with `config.probe.every_steps > 0` log `probe/...` scalars to `metrics.jsonl`
(`sdd_jax/classification/probe.py`), read with the run (`Run.probe`; unreadable lines are skipped and named,
`report_files.py`). Table 8 gives, per run group, the mean over the logged steps of the
Assumption-1 fraction, mean |r| and r1 (then mean ± std over seeds); Figure 4 plots the cosine
similarity and the L1 norms of the forward and reverse KL gradients w.r.t. the head weights
against the step (the first seed of each group).
"""
from typing import Dict, List, Sequence, Tuple

from sdd_jax.metrics import plotting
from sdd_jax.report import files as report_files
from sdd_jax.report import runs as report_runs
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.report.cells import Cell, markdown

TABLE8 = (('P(Assumption 1)', 'probe/assumption1_fraction'), ('mean |r|', 'probe/mean_abs_r'),
          ('r1', 'probe/r1'))
FIGURE4 = (('cosine(∇ forward KL, ∇ reverse KL)', ('probe/grad_cosine',)),
           ('L1 norm of the gradient', ('probe/grad_l1_forward', 'probe/grad_l1_reverse')))


def probe_records(workdir: str) -> List[Dict[str, float]]:
  """The `probe/...` records of a workdir's metrics.jsonl, one per probed step, in step order
  (a resumed run may log a step twice: the last record wins); unreadable lines are left out."""
  records, _ = report_files.read_lines(workdir_path.join(workdir, 'metrics.jsonl'))
  return list(report_runs.probe_records(records))


PHASES = (0.0, 0.5, 1.0)  # fractions of training: the paper's epochs 0, 100 and 200 of 200


def _nearest(records: List[Dict[str, float]], step: float) -> Dict[str, float]:
  return min(records, key=lambda r: (abs(r['step'] - step), r['step']))


def table8(groups, name_fn) -> str:
  """Rows: (run group, epoch) for the probed groups; cells: the record nearest each phase of
  training, mean ± std over seeds. A run's length is its summary's `steps` (else its last
  probed step); the epoch label is the phase times the configured `num_epochs`."""
  rows = []
  for group in groups:
    per_run = [(run, list(run.probe)) for run in group.runs]
    per_run = [(run, records) for run, records in per_run if records]
    if not per_run:
      continue
    epochs = group.runs[0].summary.get('epochs', group.runs[0].config.get('num_epochs'))
    for phase in PHASES:
      picked = [_nearest(records, phase * run.summary.get('steps', records[-1]['step']))
                for run, records in per_run]
      when = f'{phase * epochs:g}' if isinstance(epochs, (int, float)) else f'{phase:.0%} of training'
      rows.append([name_fn(group), when] + [Cell(tuple(float(r[key]) for r in picked))
                                           for _, key in TABLE8])
  return markdown(['run', 'epoch'] + [title for title, _ in TABLE8], rows) if rows else ''


def figure4(groups, name_fn, out_dir: str) -> List[Tuple[str, str]]:
  """Writes the Figure 4 plots to `out_dir`; returns (title, png path) pairs."""
  series: Dict[str, List[Dict[str, float]]] = {}
  for group in groups:
    records = next((list(run.probe) for run in group.runs if run.probe), [])
    if records:
      series[name_fn(group)] = records
  if not series:
    return []
  plots = []
  for index, (title, keys) in enumerate(FIGURE4):
    xs, ys = {}, {}
    for name, records in series.items():
      for key in keys:
        label = name if len(keys) == 1 else f'{name}: {key.split("_")[-1]}'
        xs[label] = [r['step'] for r in records]
        ys[label] = [r[key] for r in records]
    path = workdir_path.join(out_dir, f'figure4_{index}.png')
    plotting.line_plot(xs, ys, path, xlabel='step', ylabel=title, title=f'Figure 4: {title}')
    plots.append((title, path))
  return plots


def section(groups: Sequence, name_fn, out_dir: str) -> List[str]:
  """Markdown lines of the KL-direction section, or [] when no run was probed."""
  table = table8(groups, name_fn)
  if not table:
    return []
  lines = ['## KL-direction analysis (Table 8, Figure 4)', '', table, '']
  for title, path in figure4(groups, name_fn, out_dir):
    lines += [f'![{title}]({workdir_path.relative_link(path, out_dir)})', '']
  return lines
