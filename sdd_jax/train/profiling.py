"""`--config.profile_steps=A,B`: a `jax.profiler` trace of training steps A to B in the workdir.

Steps are numbered as in the logs: the first step of a run is 1, and `A,B` traces steps
A, A+1, ..., B (both included). The trace starts just before step A is dispatched (its batch
already on the device; the compilation of the run's first step is never in it) and stops once
step B has finished on the device, or, when B is the run's last step or the run stops early, at
the end of the loop (the final checkpoint and evaluation are then in it too). It goes to
`<workdir>/profile/plugins/profile/<date_time>/<host>.xplane.pb`, the layout of TensorBoard's
profile plugin: `pip install tensorboard tensorboard-plugin-profile` and
`tensorboard --logdir <workdir>/profile`, tab "Profile".

Only process 0 traces. Every process runs the same SPMD program, so one host's trace (its
devices and its input pipeline) shows the step; every host tracing would multiply the writes.
A resumed run that starts inside [A, B] traces from its first step to B; one that starts after
B traces nothing. Default `()`: off.
"""
import contextlib
import logging
import os
from typing import Callable, Iterator, Sequence

import jax

from sdd_jax.config.fields import ConfigError

FIELD = 'profile_steps'
FOLDER = 'profile'


def check_steps(value, total_steps: int = 0) -> tuple:
  """`config.profile_steps` as () (off) or (A, B) with 1 <= A < B (<= `total_steps` when given);
  ConfigError (one line) otherwise."""
  steps = tuple(value) if isinstance(value, (tuple, list)) else (value,)
  if not steps:
    return ()
  within = f' <= {total_steps} (the steps of this run)' if total_steps else ''
  ints = all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
  if not (len(steps) == 2 and ints and 1 <= steps[0] < steps[1]
          and (not total_steps or steps[1] <= total_steps)):
    raise ConfigError(f'config.{FIELD}: must be () (off) or two steps A,B with 1 <= A < B'
                      f'{within}, got {value!r} (set --config.{FIELD}=A,B)')
  return steps


@contextlib.contextmanager
def step_trace(steps: Sequence[int], workdir: str, total_steps: int,
               enabled: bool = True) -> Iterator[Callable]:
  """Yields `before_step(number, state)`, to call just before step `number` (1-based) is
  dispatched, with the state the previous step returned: it starts the trace at the first step in
  [A, B] and stops it (after `state` is ready) before step B + 1. Leaving the context stops an
  open trace (B was the last step, or the run stopped early). `enabled=False` (processes other
  than 0) or `steps == ()`: a no-op."""
  steps = check_steps(steps, total_steps)
  active = False

  def before_step(number: int, state) -> None:
    nonlocal active
    if not steps or not enabled:
      return
    first, last = steps
    if not active and first <= number <= last:
      directory = os.path.join(workdir, FOLDER)
      logging.info('profiling steps %d..%d into %s', number, last, directory)
      jax.profiler.start_trace(directory)
      active = True
    elif active and number > last:
      jax.block_until_ready(state)
      jax.profiler.stop_trace()
      active = False

  try:
    yield before_step
  finally:
    if active:
      jax.profiler.stop_trace()
