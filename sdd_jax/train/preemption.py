"""Stopping cleanly before the machine goes away, without a collective per step.

`watch()` yields `requested(step)`, which the training loop calls once after every step on
every process; True means "save the checkpoint of this step and stop", and in a multi-process
run it is True at the same step on every process.

- One process: a Python SIGTERM handler sets an event; `requested` reads it (no collective,
  no device-to-host read). The previous handler is put back on exit.
- Ctrl-C (SIGINT), one process: the first does what SIGTERM does (one line on stderr, the step
  in flight saved, exit 0, resumable); it also puts SIGINT's default action back, so a second
  Ctrl-C ends the process at once, killed by the signal (exit status 130 in a shell, no
  traceback), and resumes from the newest checkpoint as after any kill. SIGINT stays at its
  default action after such a stop (the final checkpoint write may take a while); where SIGINT
  is ignored (a background job), it stays ignored. Several processes: Ctrl-C is not caught.
- Several processes (after `jax.distributed.initialize()`): JAX's preemption sync point
  (`multihost_utils.reached_preemption_sync_point`). `jax.distributed.initialize` starts the
  coordination service's preemption sync manager (`jax_enable_preemption_service`, on by
  default), whose notifier catches SIGTERM in C++ on any one process. That process tells the
  coordination service; a background thread on every process then publishes its last step,
  and all agree on (the largest) + 1 as the step to stop at. `requested(step)` itself only
  reads a local counter. Our Python handler is NOT installed here: it would replace the
  notifier's handler, and the other processes would never hear of the signal.

`watch(start_step)` registers `start_step` with the sync point at once, so a notice during
compilation stops the run after its first step. A notice before that (start-up, restore) on a
resumed run makes the processes agree on a step before `start_step`: the run then trains on
until the scheduler's SIGKILL and resumes from its newest checkpoint, as after any kill.
orbax's `CheckpointManager.save` asks the same sync point about the step it saves, which is the
step `requested` gets next, so the two agree; but on process 0 orbax asks once more, with that
step, from the thread that finishes an asynchronous save: were a notice handled in the instant
between that and the loop's next call, while process 0 is a step ahead of the others, the
processes would stop at different steps (and hang until the scheduler's SIGKILL).
"""
import contextlib
import functools
import logging
import signal
import sys
import threading
from typing import Callable, Iterator

import jax
from jax.experimental import multihost_utils


@contextlib.contextmanager
def watch(start_step: int) -> Iterator[Callable[[int], bool]]:
  """Yields `requested(step) -> bool`; call it after each step with the steps done, i.e.
  `start_step + 1, start_step + 2, ...`, on every process."""
  if jax.process_count() > 1:
    yield _sync_point(start_step)
    return
  event = threading.Event()
  previous = {}
  if threading.current_thread() is threading.main_thread():
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda *_: event.set())
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # ignored: a background job
      previous[signal.SIGINT] = signal.signal(signal.SIGINT,
                                              functools.partial(first_interrupt, event))
  try:
    yield lambda step: event.is_set()
  finally:
    for signum, handler in previous.items():
      if signal.getsignal(signum) is not signal.SIG_DFL:  # SIGINT after a Ctrl-C stays default
        signal.signal(signum, handler)


INTERRUPTED = ('interrupted (Ctrl-C): saving the step in flight, then stopping; the same command '
               'resumes. Ctrl-C again stops at once (resumes from the newest checkpoint)')


def first_interrupt(event: threading.Event, signum=None, frame=None) -> None:
  """The SIGINT handler: ask for a stop as SIGTERM does, and give SIGINT back its default
  action, so the next Ctrl-C kills the process at once."""
  del signum, frame
  signal.signal(signal.SIGINT, signal.SIG_DFL)
  event.set()
  print(INTERRUPTED, file=sys.stderr, flush=True)


def _sync_point(start_step: int) -> Callable[[int], bool]:
  """`reached_preemption_sync_point`, or never (one warning) where the service is off."""
  try:
    multihost_utils.reached_preemption_sync_point(start_step)
  except RuntimeError:  # jax_enable_preemption_service was off at jax.distributed.initialize
    logging.warning('preemption notices are not caught (jax_enable_preemption_service is off): '
                    'a SIGTERM kills the run, which resumes from its newest checkpoint')
    return lambda step: False
  return multihost_utils.reached_preemption_sync_point
