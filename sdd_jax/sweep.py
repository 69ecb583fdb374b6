r"""Grid runs: `python -m sdd_jax.sweep --config configs/x.py[:ARG] --workdir_root DIR
--sweep "seed=0,1,2" --sweep "methods.sd_dropout.rate=0.1,0.3,0.5" [--print_only]`.

The cartesian product of the `--sweep` lists is one `train.py` run each (the first `--sweep`
varies slowest), in `DIR/<key>=<value>,<key>=<value>` (characters other than letters, digits and
`._=,+-` become `_`). Every override is passed as `--config.<key>=<value>` (so `seed=1` is
`--config.seed=1`), the value as written: ml_collections config_flags parses it like the field's
type (`0.3`, `both`, `(512,)`). Commas inside brackets or quotes do not split a list:
`--sweep "model.head_hidden=(),(512,)"` is two values.

Before anything runs or prints, the base config and every point of the grid are loaded and
validated here (`config_cli.load` + `tasks.validate`): a missing config file, a
misspelt key or a bad value is one line `error: ...` and exit status 1, not N failing runs.
So is a `--workdir_root` we cannot use (`workdir_path.check_supported`: local or gs:// only)
and, before running (not with `--print_only`), a gs:// root whose bucket is missing or whose
store does not answer (`workdir_path.check_store`).

Without `--print_only` the runs go one after another here (re-running resumes each from its
newest checkpoint); a failed run does not stop the others, and the failures are listed at the end
with exit status 1. `--print_only` prints one shell command per line, for a cluster scheduler.
"""
import argparse
import itertools
import os
import re
import shlex
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from sdd_jax.config import cli as config_cli
from sdd_jax.config import validation as config_validation
from sdd_jax import tasks
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError


def split_values(text: str) -> List[str]:
  """'0.1,(512, 2),"a,b"' -> ['0.1', '(512, 2)', '"a,b"']: top-level commas only."""
  values, depth, quote, current = [], 0, None, ''
  for char in text:
    if quote:
      quote = None if char == quote else quote
    elif char in '\'"':
      quote = char
    elif char in '([{':
      depth += 1
    elif char in ')]}':
      depth -= 1
    elif char == ',' and depth == 0:
      values.append(current.strip())
      current = ''
      continue
    current += char
  values.append(current.strip())
  return values


def parse_sweep(text: str) -> Tuple[str, List[str]]:
  """'methods.sd_dropout.rate=0.1,0.3' -> ('methods.sd_dropout.rate', ['0.1', '0.3'])."""
  key, sep, values = text.partition('=')
  key = key.strip()
  if key.startswith('config.'):
    key = key[len('config.'):]
  if not sep or not key or not re.fullmatch(r'[A-Za-z_][\w.]*', key):
    raise ValueError(f'--sweep {text!r}: expected KEY=V1,V2,... with KEY a config field such '
                     f'as seed or methods.sd_dropout.rate')
  values = split_values(values)
  if any(v == '' for v in values):
    raise ValueError(f'--sweep {text!r}: an empty value; write KEY=V1,V2 without empty items')
  return key, values


def expand(sweeps: Sequence[Tuple[str, Sequence[str]]]) -> List[Dict[str, str]]:
  """The cartesian product, first sweep slowest: [{key: value, ...}, ...] (insertion-ordered)."""
  keys = [key for key, _ in sweeps]
  if len(set(keys)) != len(keys):
    raise ValueError(f'--sweep: a key is given twice ({", ".join(keys)}); list its values once')
  return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in sweeps))]


def run_name(overrides: Dict[str, str]) -> str:
  """{'seed': '1', 'methods.sd_dropout.rate': '0.3'} -> 'seed=1,methods.sd_dropout.rate=0.3'."""
  name = ','.join(f'{k}={v}' for k, v in overrides.items()) or 'default'
  return re.sub(r'[^A-Za-z0-9._=,+-]', '_', name)


def command(config: str, workdir: str, overrides: Dict[str, str], *, python: str = 'python',
            train_py: str = 'train.py') -> List[str]:
  """The argv of one run: `python train.py --config C --workdir W --config.k=v ...`."""
  return [python, train_py, '--config', config, '--workdir', workdir,
          *(f'--config.{k}={v}' for k, v in overrides.items())]


def plan(config: str, workdir_root: str, sweeps, **kwargs) -> List[List[str]]:
  """One command per point of the grid."""
  return [command(config, os.path.join(workdir_root, run_name(o)), o, **kwargs)
          for o in expand(sweeps)]


def check_grid(config: str, grid: Sequence[Dict[str, str]]) -> None:
  """Loads and validates the config of every point of `grid` as train.py will; raises a
  UserError (one line, naming the point) at the first bad one."""
  for overrides in grid:
    argv = ['train.py', '--config', config, *(f'--config.{k}={v}' for k, v in overrides.items())]
    try:
      tasks.validate(config_cli.load(argv))  # config.task's validation
    except UserError as e:
      where = f'--sweep point {run_name(overrides)}: ' if overrides else ''
      raise config_validation.ConfigError(f'{where}{e}') from None


def run_all(commands: Sequence[Sequence[str]], out=sys.stdout) -> List[Tuple[str, str]]:
  """Runs the commands one after another; returns [(command, why it failed)]."""
  failures = []
  for i, cmd in enumerate(commands):
    text = shlex.join(cmd)
    print(f'[{i + 1}/{len(commands)}] {text}', file=out, flush=True)
    try:
      returncode = subprocess.run(list(cmd), check=False).returncode
    except OSError as e:
      failures.append((text, f'could not start: {e}'))
      continue
    if returncode != 0:
      failures.append((text, f'exit status {returncode}'))
  return failures


def main(argv: Optional[Sequence[str]] = None, out=sys.stdout) -> int:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.sweep', description=__doc__.split(
      '\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--config', required=True, help='configs/x.py[:ARG]')
  parser.add_argument('--workdir_root', required=True, help='one workdir per run below it')
  parser.add_argument('--sweep', action='append', default=[], help='KEY=V1,V2,... (repeatable)')
  parser.add_argument('--print_only', action='store_true', help='print the commands, run none')
  parser.add_argument('--train_py', default='train.py', help='path of train.py')
  args = parser.parse_args(argv)
  try:
    sweeps = [parse_sweep(s) for s in args.sweep]
    expand(sweeps)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  try:
    workdir_path.check_supported(args.workdir_root, '--workdir_root')
    check_grid(args.config, expand(sweeps))
    if not args.print_only:  # a scheduler's machine may not reach the store: its runs will
      workdir_path.check_store(args.workdir_root, '--workdir_root')
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  python = 'python' if args.print_only else sys.executable
  commands = plan(args.config, args.workdir_root, sweeps, python=python,
                  train_py=args.train_py)
  if args.print_only:
    for cmd in commands:
      print(shlex.join(cmd), file=out)
    return 0
  failures = run_all(commands, out=out)
  print(f'{len(commands) - len(failures)} of {len(commands)} runs succeeded', file=out)
  for text, why in failures:
    print(f'FAILED ({why}): {text}', file=out)
  return 1 if failures else 0


if __name__ == '__main__':
  sys.exit(main())
