r"""Trains a config: `python train.py --config configs/<experiment>.py[:ARG] --workdir DIR`.

Overrides: `--config.optim.lr=0.05 --config.methods.sd_dropout.rate=0.3`. Re-running the same
command resumes from the newest checkpoint in DIR. On a multi-host pod add
`--jax_distributed` (calls `jax.distributed.initialize()`; add `--coordinator_address=HOST:PORT
--num_processes=N --process_id=I` where JAX cannot find the cluster itself).
"""
import logging
import sys

from absl import app
import jax
from absl import flags
from ml_collections import config_flags

from sdd_jax.config import cli as config_cli
from sdd_jax import errors
from sdd_jax import parallel
from sdd_jax import tasks

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where checkpoints, logs and results go.')
_DISTRIBUTED = flags.DEFINE_bool('jax_distributed', False,
                                 'Call jax.distributed.initialize() (multi-host runs).')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None,
                                   'host:port of process 0, where JAX cannot find it itself.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process\'s id.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  logging.getLogger('absl').setLevel(logging.WARNING)
  if _DISTRIBUTED.value or _COORDINATOR.value:
    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    task = tasks.task_of(_CONFIG.value)  # config.task, default 'classification'
    summary = task.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except errors.UserError as e:  # one line; anything else is a bug
    print(f'error: {e}', file=sys.stderr)
    return 1
  except KeyboardInterrupt:  # Ctrl-C outside the steps (within them it stops cleanly)
    print('interrupted (Ctrl-C) before the first step or after the last; the same command '
          'resumes from the newest checkpoint', file=sys.stderr)
    return 130
  if summary and jax.process_index() == 0:
    print('final: ' + '  '.join(f'{k} {summary[k]:.4g}' for k in task.printed if k in summary))
  return 0


if __name__ == '__main__':
  # config_flags loads the file and the overrides while absl parses the flags, where a mistake
  # is a traceback: load them first, with one-line errors (absl reports a missing --config).
  if config_cli.config_spec(sys.argv) is not None:
    config_cli.exit_on_error(config_cli.load, sys.argv)
  app.run(main)
