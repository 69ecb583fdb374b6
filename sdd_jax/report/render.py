"""The whole report as markdown: the tables and sections in the paper's order, the probe and
sensitivity figures, links to the reliability diagrams, the translation table
(`translation.py`) and links to every run's workdir."""
import json
from typing import Sequence

from sdd_jax.workdir import paths as workdir_path
from sdd_jax.report import configs as report_configs
from sdd_jax.report import per_seed as report_per_seed
from sdd_jax.report import probe as report_probe
from sdd_jax.report import sensitivity as report_sensitivity
from sdd_jax.report import translation as report_translation
from sdd_jax.report.runs import REFERENCE, Group, Run, group_seeds, label, metric_keys
from sdd_jax.report.sections import ablation_sections, evaluation_sections
from sdd_jax.report.cells import STD_NOTE
from sdd_jax.report.tables import (WEIGHT_NOTE, dml_table, in_main_tables, table1, table3,
                                   weight_note)


def _reference_text() -> str:
  return ', '.join(f'{k}={json.dumps(v)}' for k, v in REFERENCE.items())


def _rel(path: str, out_dir: str) -> str:
  return workdir_path.relative_link(path, out_dir)


def _group_name(g: Group) -> str:
  if report_translation.is_translation(g.runs[0]):
    return report_translation.group_name(g)
  return (f'{label("dataset", g.field("dataset"))}, {label("method", g.field("method"))} '
          f'{g.field("sd_dropout")} {weight_note(g)}').strip()


def reliability_links(groups: Sequence[Group], out_dir: str) -> str:
  lines = []
  for g in groups:
    for run in g.runs:
      record = run.evals.get('calibration') or {}
      for plot in record.get('plots') or ():
        path = workdir_path.join(run.workdir, 'evals', 'calibration', plot)
        lines.append(f'- [{_group_name(g)}, seed {run.config.get("seed")}]'
                     f'({_rel(path, out_dir)})')
  return '\n'.join(lines)


def _flat(config, prefix=''):
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    elif key != 'seed' or prefix:
      out[prefix + key] = json.dumps(value)
  return out


def runs_list(groups: Sequence[Group], out_dir: str) -> str:
  """One line per group: its name, the fields that set it apart from groups of the same name,
  and links to its workdirs."""
  flats = [_flat(g.runs[0].config) for g in groups]
  lines = []
  for g, flat in zip(groups, flats):
    twins = [f for h, f in zip(groups, flats) if _group_name(h) == _group_name(g)]
    differ = sorted(k for k in set().union(*twins) if len({t.get(k) for t in twins}) > 1)
    extra = ' (' + ', '.join(f'{k}={flat.get(k, "–")}' for k in differ) + ')' if differ else ''
    lines.append(f'- {_group_name(g)}{extra}, n={len(g.runs)}: ' + ', '.join(
        f'[seed {r.config.get("seed")}]({_rel(r.workdir, out_dir)})' for r in g.runs))
  return '\n'.join(lines)


def render(runs: Sequence[Run], out_dir: str = '.', extra: Sequence[str] = (),
           per_seed: bool = False) -> str:
  """The whole report as markdown; links relative to `out_dir`. Translation runs
  (`translation.py`) have their own table and stay out of the image tables. `extra`: the lines
  of sections from workdirs that are not runs of ours (detection: `detection.section`), after
  the tables of the runs (the image tables are left out when only such workdirs were found).
  `per_seed`: a table of every run's values (`per_seed.py`) before the configurations."""
  if not runs:
    return '\n'.join(['# SD-Dropout results', '', *extra])
  translation_groups = group_seeds([r for r in runs if report_translation.is_translation(r)])
  image_runs = [r for r in runs if not report_translation.is_translation(r)]
  groups = group_seeds(image_runs)
  parts = ['# SD-Dropout results', '',
           f'{len(runs)} runs in {len(groups) + len(translation_groups)} groups; cells: '
           f'{STD_NOTE}; – : no run.', '']
  if image_runs or not translation_groups:
    parts += _image_sections(groups, image_runs, out_dir)
  parts += report_translation.section(translation_groups)
  parts += list(extra)
  if per_seed:
    parts += report_per_seed.section(groups + translation_groups, _group_name)
  parts += report_configs.section(groups + translation_groups, _group_name)
  parts += ['## Runs', '', runs_list(groups + translation_groups, out_dir), '']
  return '\n'.join(parts)


def _image_sections(groups: Sequence[Group], runs: Sequence[Run], out_dir: str) -> list:
  """Tables 1-14, the probe, the sensitivity study and the reliability diagrams."""
  main = table1(groups) if any(in_main_tables(g) for g in groups) else (
      f'No run at the paper\'s settings ({_reference_text()}).')
  parts = ['## Table 1: top-1 accuracy % (`test/top1`)', '', main, '']
  if any(in_main_tables(g) for g in groups):
    if metric_keys(runs, 'test/top5'):
      parts += ['## Table 1, top-5 accuracy % (`test/top5`)', '', table1(groups, 'test/top5'), '']
    parts += [WEIGHT_NOTE, '']
  dml = dml_table(groups)
  if dml:
    parts += ['### DML: both networks and their ensemble, top-1 % (Table 1 shows network 0)', '',
              dml, '']
  imagenet = table3(groups)
  if imagenet:
    parts += ['## Table 3: ImageNet top-1 / top-5 accuracy % (`test/top1`, `test/top5`)', '',
              imagenet, '']
  evaluations = evaluation_sections(groups, runs)
  if evaluations:
    parts += ['## Evaluations: Base vs +SD-Dropout', '']
    for heading, table in evaluations:
      parts += [f'### {heading}', '', table, '']
  ablations = ablation_sections(groups)
  if ablations:
    parts += ['## Ablations', '']
    for heading, table in ablations:
      parts += [f'### {heading}', '', table, '']
  parts += report_probe.section(groups, _group_name, out_dir)
  parts += report_sensitivity.section(groups, out_dir)
  links = reliability_links(groups, out_dir)
  if links:
    parts += ['## Reliability diagrams', '', links, '']
  return parts
