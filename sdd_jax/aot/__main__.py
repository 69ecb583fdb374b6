r"""`python -m sdd_jax.aot --config C[:ARG] --topology NAME [--config.x=y ...] [--out DIR]`:
the compile check. Compiles the config's real train step and eval step for every chip of a TPU
slice that is not here (e.g. `--topology v5e:16x16`), prints the per-chip table and writes
`DIR/report.json` and `DIR/report.md` (default `aot_reports/<config>_<topology>`).

Needs libtpu (`pip install -r requirements-tpu.txt`); runs on any CPU host, JAX_PLATFORMS=cpu
included. A program that does not fit the chip's HBM (with `report.HEADROOM`) is one `error:`
line, exit 1, nothing written; so is any other mistake.
"""
import argparse
import os
import sys

from sdd_jax.aot import chips
from sdd_jax.aot import compile as compile_lib
from sdd_jax.aot import report as report_lib
from sdd_jax.config import cli as config_cli
from sdd_jax.errors import UserError
from sdd_jax import tasks


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # one `error:` line, exit 1, as every other mistake
    raise UserError(f'{message} (usage: python -m sdd_jax.aot --config C[:ARG] --topology NAME '
                    '[--config.x=y ...] [--out DIR] [--programs train,eval])')


def _parse(argv):
  parser = _Parser(prog='python -m sdd_jax.aot',
                                   description='The compile check (docs/pods.md).')
  parser.add_argument('--config', required=True, help='configs/<experiment>.py[:ARG]')
  parser.add_argument('--topology', required=True, help='a TPU slice, e.g. v5e:2x2, v4:2x2x2')
  parser.add_argument('--out', default=None, help='report folder')
  parser.add_argument('--programs', default='train,eval',
                      help='which programs to compile: train, eval or both (default)')
  known, rest = parser.parse_known_args(argv[1:])
  unknown = [a for a in rest if not config_cli.override_paths([a])]
  if unknown:
    parser.error(f'unrecognized arguments: {" ".join(unknown)}')
  return known


def run(argv) -> dict:
  """The report of `argv` (written to its folder); UserError for any mistake or misfit."""
  args = _parse(argv)
  overrides = [a for a in argv[1:] if config_cli.override_paths([a])]
  config = config_cli.load([argv[0], '--config', args.config] + overrides)
  chip = chips.chip_of(args.topology)
  wanted = [p for p in args.programs.split(',') if p]
  if not wanted or set(wanted) - {'train', 'eval'}:
    raise UserError(f'--programs {args.programs}: give train, eval or train,eval')
  task = tasks.task_of(config)
  if not task.compile_targets:
    raise UserError(f'config.task {config.get("task", tasks.DEFAULT)!r} has no compile targets')
  mesh = compile_lib.topology_mesh(args.topology)
  targets = task.create_compile_targets(config, mesh)
  devices = targets['devices']
  programs = {}
  for name in wanted:
    per_step = targets['per_step' if name == 'train' else 'eval_per_step']
    fn, fn_args = targets[name]
    program, _ = compile_lib.compile_program(fn, fn_args)
    program.update(per_step=per_step, fits=report_lib.fits(program, chip),
                   estimate=report_lib.roofline(program, chip, devices, per_step))
    programs[name] = program
  for name, program in programs.items():
    if not program['fits']:
      total = program['memory']['total']
      raise compile_lib.DoesNotFitError(
          f'the {name} program needs {total / 2**30:.2f} GiB per chip on {args.topology}, more than '
          f'{report_lib.HEADROOM:.0%} of its {chip.hbm_bytes / 2**30:.2f} GiB of HBM; lower '
          'config.batch_size (or use more chips)')
  spec = args.config
  name = os.path.splitext(os.path.basename(spec.split(':')[0]))[0]
  report = dict(config=spec, topology=args.topology, devices=devices, unit=targets['unit'],
                chip=dict(vars(chip)), programs=programs, headroom=report_lib.HEADROOM)
  out = args.out or os.path.join('aot_reports', f'{name}_{args.topology.replace(":", "_")}')
  report_lib.write(report, out)
  report['out'] = out
  return report


def main(argv) -> int:
  try:
    report = run(argv)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(report_lib.markdown(report), end='')
  print(f'wrote {report["out"]}/report.json and report.md')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
