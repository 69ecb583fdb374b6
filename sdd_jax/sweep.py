r"""Grid runs: `python -m sdd_jax.sweep --config configs/x.py[:ARG] --workdir_root DIR
--sweep "seed=0,1,2" --sweep "methods.sd_dropout.rate=0.1,0.3,0.5" [--print_only]`.

The cartesian product of the `--sweep` lists is one `train.py` run each (the first `--sweep`
varies slowest), in `DIR/<key>=<value>,<key>=<value>` (characters other than letters, digits and
`._=,+-` become `_`). Every override is passed as `--config.<key>=<value>` (so `seed=1` is
`--config.seed=1`), the value as written: ml_collections config_flags parses it like the field's
type (`0.3`, `both`, `(512,)`). Commas inside brackets or quotes do not split a list:
`--sweep "model.head_hidden=(),(512,)"` is two values.

The key `arg` sweeps the config file's `:ARG` tokens: `--sweep "arg=ce,"` is two points, one
with the token `ce` and one with no extra token (an empty item), each added to the tokens the
`--config` gives (`configs/demo.py:smoke` and `ce` -> `configs/demo.py:smoke,ce`). An item is
one token. So cross-entropy and SD-Dropout over seeds go into one root in one command:
`--config configs/demo.py --sweep "arg=ce," --sweep "seed=0,1"` runs `arg=ce,seed=0`,
`arg=ce,seed=1`, `arg=,seed=0` and `arg=,seed=1`.

Before anything runs or prints, the base config and every point of the grid are loaded and
validated here (`config_cli.load` + `tasks.validate`): a missing config file, a
misspelt key or a bad value is one line `error: ...` and exit status 1, not N failing runs.
So is a `--workdir_root` we cannot use (`workdir_path.check_supported`: local or gs:// only)
and, before running (not with `--print_only`), a gs:// root whose bucket is missing or whose
store does not answer (`workdir_path.check_store`).

Without `--print_only` the runs go one after another here (re-running resumes each from its
newest checkpoint); a failed run does not stop the others, and the failures are listed at the end
with exit status 1. `--print_only` prints one shell command per line, for a cluster scheduler.
Before running, a workdir of the grid that already holds a run of a different config (a second
sweep of another config or `:ARG` into the same root) is one line `error: ...` naming it, and
nothing runs (`claim.check_config`, what train.py would refuse at the start of that run).
"""
import argparse
import itertools
import os
import re
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sdd_jax.config import cli as config_cli
from sdd_jax.config import validation as config_validation
from sdd_jax import methods
from sdd_jax import tasks
from sdd_jax.workdir import claim as workdir_claim
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


ARG = 'arg'  # the swept key of the config file's :ARG tokens (not a config field)


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
  if key == ARG:
    if any(',' in v for v in values):
      raise ValueError(f'--sweep {text!r}: an arg item is one :ARG token; write arg=T1,T2 '
                       '(an empty item: no extra token)')
    return key, values
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


def config_spec(config: str, overrides: Dict[str, str]) -> str:
  """`--config` of one point: `config` with the point's `arg` token added to its own `:ARG`
  tokens ('configs/x.py:smoke' + 'ce' -> 'configs/x.py:smoke,ce'; an empty token adds none)."""
  token = overrides.get(ARG, '')
  if not token:
    return config
  path, colon, arg = config.partition(':')
  return f'{path}:{arg},{token}' if colon and arg else f'{path}:{token}'


def config_overrides(overrides: Dict[str, str]) -> List[str]:
  """The `--config.k=v` arguments of one point (its `arg` is in `config_spec`)."""
  return [f'--config.{k}={v}' for k, v in overrides.items() if k != ARG]


def command(config: str, workdir: str, overrides: Dict[str, str], *, python: str = 'python',
            train_py: str = 'train.py') -> List[str]:
  """The argv of one run: `python train.py --config C[:ARG] --workdir W --config.k=v ...`."""
  return [python, train_py, '--config', config_spec(config, overrides), '--workdir', workdir,
          *config_overrides(overrides)]


def plan(config: str, workdir_root: str, sweeps, **kwargs) -> List[List[str]]:
  """One command per point of the grid."""
  return [command(config, os.path.join(workdir_root, run_name(o)), o, **kwargs)
          for o in expand(sweeps)]


def check_grid(config: str, grid: Sequence[Dict[str, str]]) -> List[Any]:
  """Loads and validates the config of every point of `grid` as train.py will; -> the configs.
  Raises a UserError (one line, naming the point) at the first bad one."""
  loaded = []
  for overrides in grid:
    argv = ['train.py', '--config', config_spec(config, overrides), *config_overrides(overrides)]
    try:
      loaded.append(config_cli.load(argv))
      tasks.validate(loaded[-1])  # config.task's validation
    except UserError as e:
      where = f'--sweep point {run_name(overrides)}: ' if overrides else ''
      raise config_validation.ConfigError(f'{where}{e}') from None
  return loaded


def check_workdirs(workdir_root: str, grid: Sequence[Dict[str, str]],
                   configs: Sequence[Any]) -> None:
  """WorkdirError (one line) for the first point whose workdir holds a run of a different
  config: what train.py's claim would refuse at the start of that run (reads only)."""
  for overrides, config in zip(grid, configs):
    workdir = workdir_path.join(workdir_root, run_name(overrides))
    image = tasks.task_of(config) is tasks.TASKS.get(tasks.DEFAULT)
    try:  # an image run's claim compares the resolved method sections
      workdir_claim.check_config(workdir, config, **(
          {'resolve': methods.resolve_config} if image else {}))
    except UserError as e:
      raise workdir_claim.WorkdirError(
          f'{e}; to sweep several configs or :ARG tokens into one root, give them as one '
          'sweep (--sweep "arg=T1,T2") or use another --workdir_root') from None


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
    configs = check_grid(args.config, expand(sweeps))
    if not args.print_only:  # a scheduler's machine may not reach the store: its runs will
      workdir_path.check_store(args.workdir_root, '--workdir_root')
      check_workdirs(args.workdir_root, expand(sweeps), configs)
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
