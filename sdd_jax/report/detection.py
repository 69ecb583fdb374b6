"""Paper Table 4: COCO object detection with a backbone pre-trained by each method.

A detection workdir (`python -m sdd_jax.detection.finetune --workdir D ...`) holds
`results.json` with `kind: "detection"`, `schedule` (`0.5x` or `1x`), COCO box mAP and mAP@0.5
in percent (`mAP`, `mAP50`) and `backbone`: the metadata of the exported backbone file
(`python -m sdd_jax.export`), whose `methods` (a JSON list; `[]` = cross-entropy only) names the
row and `model` the backbone. A row is one (method, backbone); a cell is the mean ± sample std
over the workdirs of that row and schedule, `mAP / mAP@0.5`, beside the paper's numbers
(Faster R-CNN with an ImageNet ResNet-152, paper Table 4). A run stopped before its schedule's
end (`complete: false`, `--max_iters`) is left out with one line.
"""
import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

from sdd_jax.workdir import paths as workdir_path
from sdd_jax.report import files as report_files
from sdd_jax.report.cells import Cell, DASH, markdown_table

SCHEDULES = ('0.5x', '1x')
# Paper Table 4: (mAP, mAP@0.5) per (method, schedule).
PAPER = {('ce', '0.5x'): (31.2, 50.6), ('ce', '1x'): (39.4, 60.1),
         ('sd_dropout', '0.5x'): (32.5, 52.8), ('sd_dropout', '1x'): (39.8, 60.7)}
LABELS = {'ce': 'Cross-Entropy', 'sd_dropout': 'SD-Dropout'}
PAPER_BACKBONE = 'resnet152'


@dataclasses.dataclass(frozen=True)
class DetectionRun:
  workdir: str
  method: str  # 'ce', 'sd_dropout', or the backbone's methods joined by '+'
  model: str  # the backbone, e.g. 'resnet152'
  schedule: str
  map: float
  map50: float


def _method(metadata: Dict[str, str]) -> str:
  names = json.loads(metadata.get('methods', '[]'))
  return '+'.join(sorted(names)) or 'ce'


def load_run(workdir: str) -> Optional[DetectionRun]:
  """The detection run in `workdir` (None when its results.json is not a detection record);
  `report_files.RunFileError` (one line) when the record cannot be read."""
  path = workdir_path.join(workdir, 'results.json')
  record = report_files.read_object(path)
  if not record or record.get('kind') != 'detection':
    return None
  if record.get('complete') is False:  # stopped by --max_iters before the schedule's end
    raise report_files.RunFileError(
        f'{path}: training stopped at iteration {record.get("iterations")} of '
        f'{record.get("schedule_iterations")} (--max_iters); re-run without it to finish')
  try:
    backbone = record['backbone']
    return DetectionRun(workdir=workdir, method=_method(backbone),
                        model=str(backbone.get('model', '?')), schedule=str(record['schedule']),
                        map=float(record['mAP']), map50=float(record['mAP50']))
  except (KeyError, TypeError, ValueError, AttributeError) as e:
    raise report_files.RunFileError(f'{path}: not a detection record ({type(e).__name__}: {e}); '
                                    'it is written by python -m sdd_jax.detection.finetune') from None


def find_runs(dirs: Sequence[str], problems: List[str]) -> List[DetectionRun]:
  """Every detection run at or below `dirs` (a folder whose `results.json` has kind
  "detection"); an unreadable record is left out with one line in `problems`."""
  runs = []
  for directory in dirs:
    if not workdir_path.path(directory).is_dir():
      continue
    for root, folders, files in workdir_path.walk(directory):
      folders[:] = sorted(f for f in folders if f not in ('checkpoints', 'tensorboard', 'evals'))
      if 'results.json' in files:
        try:
          run = load_run(root)
        except (report_files.RunFileError, OSError) as e:
          problems.append(f'skipped detection run {root}: {e}')
          continue
        if run is not None:
          runs.append(run)
  return sorted(runs, key=lambda r: r.workdir)


def _row_key(run: DetectionRun) -> Tuple[int, str, str]:
  order = list(LABELS).index(run.method) if run.method in LABELS else len(LABELS)
  return order, run.method, run.model


def _pair(runs: Sequence[DetectionRun]) -> str:
  if not runs:
    return DASH
  usual = max(3, len(runs))
  return (f'{Cell(tuple(r.map for r in runs)).text(usual)} / '
          f'{Cell(tuple(r.map50 for r in runs)).text(usual)}')


def table4(runs: Sequence[DetectionRun]) -> str:
  """Markdown: per (method, backbone) row, `mAP / mAP@0.5` per schedule (ours), then the
  paper's (ResNet-152 rows only)."""
  rows = []
  for key in sorted({_row_key(r) for r in runs}):
    _, method, model = key
    mine = [r for r in runs if _row_key(r) == key]
    label = LABELS.get(method, method)
    if model != PAPER_BACKBONE:
      label += f' ({model})'
    paper = [f'{PAPER[method, s][0]} / {PAPER[method, s][1]}'
             if model == PAPER_BACKBONE and (method, s) in PAPER else DASH for s in SCHEDULES]
    rows.append([label, *[_pair([r for r in mine if r.schedule == s]) for s in SCHEDULES],
                 *paper])
  columns = ['Backbone pre-training', *[f'{s} schedule' for s in SCHEDULES],
             *[f'paper {s}' for s in SCHEDULES]]
  return markdown_table(columns, rows)


def section(runs: Sequence[DetectionRun]) -> List[str]:
  """The report's Table 4 section (empty without detection runs)."""
  if not runs:
    return []
  return ['## Table 4: COCO detection, mAP / mAP@0.5 % (Faster R-CNN + FPN, box AP on val2017)',
          '', f'{len(runs)} fine-tuning runs; cells: mean ± sample std over runs (n=k: k runs); '
          'paper: ImageNet ResNet-152 backbones.', '', table4(runs), '']
