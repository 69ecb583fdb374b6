r"""The offline first run: cross-entropy and SD-Dropout side by side, one command.

  python -m sdd_jax.demo --workdir /tmp/sdd_demo [--seed N] [--config configs/demo.py]

Trains `<config>:ce` (the baseline) and `<config>` (+ SD-Dropout), each in its own workdir
below `--workdir` (`ce/`, `sd_dropout/`; re-running resumes or reuses them, as train.py does),
then prints one table (test top-1, NLL, 10-bin ECE, mean confidence, and the `temperature`
evaluator's T*, ECE and NLL after temperature scaling) with a "CE + TS" row (the baseline
after temperature scaling: Guo et al. 2017; T* fitted as `evaluators/temperature.py` says,
cross-fitted on the test split for the digits) and writes `<workdir>/demo.md` (the table and
both reliability diagrams) and `<workdir>/reliability.png` (the two diagrams side by side, each
with its curves before and after scaling). What the default setting is and why:
`configs/demo.py`.
"""
import argparse
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence

from sdd_jax.config import cli as config_cli
from sdd_jax.metrics import plotting
from sdd_jax.classification import trainer
from sdd_jax.errors import UserError
from sdd_jax.evaluators import results as results_lib

# (title, workdir name, config token): the baseline first.
ARMS = (('CE', 'ce', 'ce'), ('SD-Dropout', 'sd_dropout', ''))
# configs/demo.py beside this package (a checkout, `pip install -e .` or a wheel): any working folder.
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              'configs', 'demo.py')
COLUMNS = (('top-1 %', 'test/top1'), ('NLL', 'test/nll'), ('ECE %', 'calibration/ece'),
           ('confidence %', 'calibration/confidence'), ('T*', 'temperature/t_star'),
           ('ECE % after TS', 'temperature/ece_after'), ('NLL after TS', 'temperature/nll_after'))
BASELINE_TS = 'CE + TS'  # the baseline's row after temperature scaling


def _ts_row(row: Dict[str, object]) -> Dict[str, object]:
  """The "CE + TS" row of the baseline's `row`: its numbers after temperature scaling (top-1 is
  unchanged by any T; the TS columns are the row itself, so left empty)."""
  return {'title': BASELINE_TS, 'workdir': row['workdir'], 'test/top1': row['test/top1'],
          'test/nll': row['temperature/nll_after'], 'calibration/ece': row['temperature/ece_after'],
          'calibration/confidence': row['ts_confidence'],
          'temperature/t_star': row['temperature/t_star'],
          'temperature/ece_after': None, 'temperature/nll_after': None}


def _spec(config: str, *tokens: str) -> str:
  path, _, arg = config.partition(':')
  tokens = [t for t in (*arg.split(','), *tokens) if t]
  return f'{path}:{",".join(tokens)}' if tokens else path


def run(workdir: str, config: str = DEFAULT_CONFIG, seed: int = 0,
        extra_tokens: Sequence[str] = ()) -> List[Dict[str, object]]:
  """Trains both arms of `config` (tokens `seed=N` and `extra_tokens` added to each) and
  returns one row per arm, the baseline's "CE + TS" row after it: {'title', 'workdir',
  <summary keys of COLUMNS>, 'ts_confidence', 'calibration' (its panel: bins, ECE, N, curves)}."""
  rows = []
  for title, name, token in ARMS:
    spec = _spec(config, token, f'seed={seed}', *extra_tokens)
    arm_dir = os.path.join(workdir, name)
    print(f'training {title}: --config {spec} --workdir {arm_dir}', flush=True)
    summary = trainer.train_and_evaluate(config_cli.load_file(spec), arm_dir)
    details = (results_lib.read_results(arm_dir, 'calibration') or {}).get('details') or {}
    scaled = (results_lib.read_results(arm_dir, 'temperature') or {}).get('details') or {}
    curves = {f'{title}, raw': details.get('bins', []),
              f'{title}, after TS': scaled.get('bins_after', [])}
    confidence = scaled.get('confidence_after')
    rows.append({'title': title, 'workdir': arm_dir, **{k: summary.get(k) for _, k in COLUMNS},
                 'ts_confidence': None if confidence is None else 100 * confidence,
                 'calibration': (details.get('bins', []), details.get('ece', float('nan')),
                                 details.get('n', 0), curves)})
    if name == ARMS[0][1] and summary.get('temperature/t_star') is not None:
      rows.append(_ts_row(rows[-1]))
  return rows


def _cell(value) -> str:
  return 'n/a' if value is None else f'{value:.2f}'


def table(rows: Sequence[Dict[str, object]]) -> str:
  """The rows as a markdown table (method, then COLUMNS)."""
  lines = ['| method | ' + ' | '.join(name for name, _ in COLUMNS) + ' |',
           '| --- |' + ' ---: |' * len(COLUMNS)]
  for row in rows:
    cells = [_cell(row.get(k)) for _, k in COLUMNS]
    lines.append(f'| {row["title"]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write_outputs(workdir: str, rows: Sequence[Dict[str, object]], seed: int) -> str:
  """`<workdir>/reliability.png` (+ .json) and `<workdir>/demo.md`; returns demo.md's path."""
  plotting.reliability_panels({row['title']: row['calibration'] for row in rows
                               if 'calibration' in row},
                              os.path.join(workdir, 'reliability.png'))
  text = '\n'.join([
      f'# CE and SD-Dropout side by side (seed {seed})', '',
      'Test split; ECE over 10 equal-width bins, confidence = mean max-softmax. TS: temperature '
      'scaling (one T* fitted by NLL on examples the network never trained on; how: '
      '`evals/temperature/results.json`, details.fit); "CE + TS" is the baseline after it.', '',
      table(rows), '', '![reliability diagrams](reliability.png)', '',
      *[f'- {row["title"]}: `{row["workdir"]}`' for row in rows], ''])
  path = os.path.join(workdir, 'demo.md')
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(path + '.tmp', path)
  return path


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.demo',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='one workdir per arm below it')
  parser.add_argument('--config', default=DEFAULT_CONFIG, help='a config file with a :ce '
                      'token (its baseline), e.g. configs/demo.py')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--smoke', action='store_true', help='a tiny model on synthetic data')
  args = parser.parse_args(argv)
  logging.getLogger('absl').setLevel(logging.WARNING)
  try:
    rows = run(args.workdir, args.config, args.seed, ('smoke',) if args.smoke else ())
  except UserError as e:  # one line; anything else is a bug
    print(f'error: {e}', file=sys.stderr)
    return 1
  path = write_outputs(args.workdir, rows, args.seed)
  print(table(rows))
  print(f'reliability diagrams: {os.path.join(args.workdir, "reliability.png")}; '
        f'report: {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
