"""`python -m sdd_jax.report DIR... [--out report.md]` (the package docstring says what it
writes)."""
import argparse
import contextlib
import os
import sys
from typing import List, Optional, Sequence

from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError
from sdd_jax.report import detection
from sdd_jax.report.render import render
from sdd_jax.report.runs import load_runs

DESCRIPTION = 'Paper-style tables over many runs.'


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.report',
                                   description=DESCRIPTION)
  parser.add_argument('dirs', nargs='+', help='workdirs, or folders with workdirs below them')
  parser.add_argument('--out', default='report.md', help='the markdown file to write')
  parser.add_argument('--per_seed', action='store_true',
                      help='add a table of every run\'s values, seed by seed')
  args = parser.parse_args(argv)
  try:  # every path before any is read: a scheme we cannot use, a missing or silent store
    for directory in args.dirs:
      workdir_path.check_store(directory, 'folder')
    workdir_path.check_store(args.out, '--out')
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  problems: List[str] = []
  remote = ', '.join(d for d in args.dirs if not workdir_path.is_local(d))
  try:  # the store failing after the check above: one line naming the gs:// folders
    with workdir_path.store_errors(remote, 'folder') if remote else contextlib.nullcontext():
      runs = load_runs(args.dirs, problems)
      detection_runs = detection.find_runs(args.dirs, problems)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  for problem in problems:
    print(problem, file=sys.stderr)
  if not runs and not detection_runs:
    skipped = sum(p.startswith('skipped run ') for p in problems)
    print(f'error: no {"readable run" if skipped else "workdir (a folder with config.json)"} '
          f'in {", ".join(args.dirs)}' + (f' ({skipped} unreadable, named above)' if skipped
                                          else ''), file=sys.stderr)
    return 1
  out = workdir_path.path(args.out)  # a local file or a gs:// object
  out_dir = os.fspath(out.parent)
  text = render(runs, out_dir, extra=detection.section(detection_runs), per_seed=args.per_seed)
  try:
    with workdir_path.store_errors(args.out, '--out'):
      out.parent.mkdir(parents=True, exist_ok=True)
    workdir_path.write_text(out, text)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  left_out = sum(p.startswith('skipped run ') for p in problems)
  print(f'{args.out}: {len(runs)} runs' + (f', {len(detection_runs)} detection runs'
                                           if detection_runs else '')
        + (f' ({left_out} unreadable left out)' if left_out else ''))
  return 0

