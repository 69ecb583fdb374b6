r"""The offline translation demo: label smoothing (LS) and PS-KD on the toy corpus, over seeds,
one command, and PS-KD's step time relative to LS.

  python -m sdd_jax.translation.demo --workdir /tmp/translation_demo [--seeds 3] [--time_steps 40]

Trains `configs/translation_demo.py:ls,seed=S` and `configs/translation_demo.py:seed=S` for
S = 0 .. seeds-1, each in its own workdir below `--workdir` (`ls_s0/`, `ps_kd_s0/`, ...;
re-running resumes or reuses them, as train.py does), prints the BLEU table (mean ± std over
the seeds, sample std) and writes it to `<workdir>/demo.md`. `--time_steps N` (0: off) then
times N train steps of each arm on the same batches in one process, interleaved (LS step,
PS-KD step, LS step, ...), after compiling both for every batch shape, and prints the ratio of
their total times. What the setting is and why: `configs/translation_demo.py`.
"""
import argparse
import logging
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import jax
import numpy as np

from sdd_jax.config import cli as config_cli
from sdd_jax import parallel
from sdd_jax import tasks
from sdd_jax.errors import UserError
from sdd_jax.translation import corpus as corpus_lib
from sdd_jax.translation import model as model_lib
from sdd_jax.translation import optim
from sdd_jax.translation import step as step_lib
from sdd_jax.translation import trainer

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'configs', 'translation_demo.py')
ARMS = (('LS', 'ls', 'ls'), ('PS-KD', 'ps_kd', ''))  # (title, workdir prefix, config token)
COLUMNS = (('valid BLEU', 'valid/bleu'), ('test BLEU', 'test/bleu'),
           ('test BLEU (tok)', 'test/bleu_tok'), ('test NLL', 'test/nll'))


def _spec(config: str, *tokens: str) -> str:
  path, _, arg = config.partition(':')
  tokens = [t for t in (*arg.split(','), *tokens) if t]
  return f'{path}:{",".join(tokens)}' if tokens else path


def run(workdir: str, config: str = DEFAULT_CONFIG, seeds: int = 3,
        extra_tokens: Sequence[str] = ()) -> Dict[str, List[dict]]:
  """{arm title: [summary per seed]} after training every arm and seed."""
  results = {title: [] for title, _, _ in ARMS}
  for seed in range(seeds):
    for title, name, token in ARMS:
      spec = _spec(config, token, f'seed={seed}', *extra_tokens)
      arm_dir = os.path.join(workdir, f'{name}_s{seed}')
      print(f'training {title}: --config {spec} --workdir {arm_dir}', flush=True)
      results[title].append(tasks.train_and_evaluate(config_cli.load_file(spec), arm_dir))
  return results


def check_flags(workdir: str, config: str, seeds: int, time_steps: int,
                extra_tokens: Sequence[str] = ()) -> None:
  """UserError (one line) for a flag the demo cannot run with, before anything is written:
  `--seeds` < 1, `--time_steps` < 0, a `--workdir` that is a file, a `--config` that is not
  a translation config or whose arms (`:ls`, `seed=S`) do not validate."""
  if seeds < 1:
    raise UserError(f'--seeds {seeds}: the demo trains each arm on seeds 0 .. seeds-1; give '
                    f'--seeds 1 or more')
  if time_steps < 0:
    raise UserError(f'--time_steps {time_steps}: give a number of steps >= 0 (0: no timing)')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f'--workdir {workdir} is a file; give a folder (one workdir per arm and '
                    f'seed goes below it)')
  task = config_cli.load_file(config).get('task', 'classification')
  if task != 'translation':
    raise UserError(f'--config {config}: a {task} config; the demo compares translation arms: '
                    f'give a translation config with an :ls token (configs/translation_demo.py)')
  for seed in range(seeds):
    for _, _, token in ARMS:
      tasks.validate(config_cli.load_file(_spec(config, token, f'seed={seed}', *extra_tokens)))


def _cell(values: Sequence[float]) -> str:
  values = np.asarray(values, np.float64)
  std = values.std(ddof=1) if len(values) > 1 else 0.0
  return f'{values.mean():.2f} ± {std:.2f}'


def table(results: Dict[str, List[dict]]) -> str:
  """Markdown: one row per arm, mean ± std over seeds of each of COLUMNS."""
  seeds = len(next(iter(results.values())))
  lines = [f'| method ({seeds} seeds) | ' + ' | '.join(n for n, _ in COLUMNS) + ' |',
           '| --- |' + ' ---: |' * len(COLUMNS)]
  for title, summaries in results.items():
    lines.append(f'| {title} | ' + ' | '.join(_cell([s[k] for s in summaries])
                                              for _, k in COLUMNS) + ' |')
  return '\n'.join(lines)


def step_time_ratio(config_spec: str, num_steps: int) -> Dict[str, float]:
  """Seconds per step of LS and PS-KD on the same `num_steps` batches, interleaved, in this
  process (both compiled for every batch shape first); -> {'ls_s', 'pskd_s', 'ratio'}."""
  mesh = parallel.create_mesh()
  configs = {title: config_cli.load_file(_spec(config_spec, token)) for title, _, token in ARMS}
  config = configs['PS-KD']
  corpus_lib.prepare(config)
  corpus = corpus_lib.create_corpus(config, num_devices=mesh.devices.size)
  loader = corpus.loader
  batches = [parallel.to_global(loader.batch(s), mesh) for s in range(num_steps)]
  model = model_lib.create_model(config.model, corpus.tokenizer.vocab_size)
  sample = np.ones((1, 2), np.int32)
  arms = {}
  for title, arm_config in configs.items():
    schedule = optim.make_lr_schedule(arm_config.optim)
    tx = optim.make_optimizer(arm_config.optim, schedule)
    epsilon, alpha = trainer.method_settings(arm_config)
    step = step_lib.make_train_step(model, tx, seed=0, lr_schedule=schedule, mesh=mesh,
                                    epsilon=epsilon, pskd_alpha=alpha,
                                    steps_per_epoch=loader.steps_per_epoch,
                                    num_epochs=arm_config.num_epochs)
    state = trainer.create_state(model, tx, arm_config, sample, sample, mesh)
    compiled = {}
    for batch in batches:
      key = tuple(v.shape for v in batch.values())
      if key not in compiled:
        compiled[key] = step.lower(state, batch).compile()
    arms[title] = [compiled, state, 0.0]
  for batch in batches:
    key = tuple(v.shape for v in batch.values())
    for title in arms:
      compiled, state, seconds = arms[title]
      start = time.perf_counter()
      state, metrics = compiled[key](state, batch)
      jax.block_until_ready(metrics)
      arms[title] = [compiled, state, seconds + time.perf_counter() - start]
  ls, pskd = arms['LS'][2] / num_steps, arms['PS-KD'][2] / num_steps
  return {'ls_s': ls, 'pskd_s': pskd, 'ratio': pskd / ls}


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.translation.demo',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='one workdir per arm and seed below it')
  parser.add_argument('--config', default=DEFAULT_CONFIG,
                      help='a translation config with an :ls token (its baseline)')
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--time_steps', type=int, default=0,
                      help='then time this many interleaved steps of each arm (0: off)')
  parser.add_argument('--smoke', action='store_true', help='a tiny model for a few steps')
  args = parser.parse_args(argv)
  logging.getLogger('absl').setLevel(logging.WARNING)
  extra = ('smoke',) if args.smoke else ()
  try:
    check_flags(args.workdir, args.config, args.seeds, args.time_steps, extra)
    results = run(args.workdir, args.config, args.seeds, extra)
    text = table(results)
    if args.time_steps:
      timing = step_time_ratio(_spec(args.config, *extra), args.time_steps)
      text += (f'\n\nStep time over {args.time_steps} interleaved steps: LS '
               f'{timing["ls_s"] * 1e3:.1f} ms, PS-KD {timing["pskd_s"] * 1e3:.1f} ms, '
               f'ratio {timing["ratio"]:.2f}')
  except UserError as e:  # one line; anything else is a bug
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(text)
  with open(os.path.join(args.workdir, 'demo.md'), 'w', encoding='utf-8') as f:
    f.write(f'# Translation demo: LS vs PS-KD\n\n{text}\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
