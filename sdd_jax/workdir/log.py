"""What a training run logs and summarises: the step metrics of the current log window, the
training means at each log point, the images/s clock, and `summary.json`.

`PendingMetrics.run_state()` is saved with each checkpoint (its record) and given back on
resume, so a run stopped, killed or re-run logs and summarises as the uninterrupted run did.
"""
import time
from typing import Dict, List, Optional, Tuple

import jax
import numpy as np

from sdd_jax.train import throughput
from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError


class NonFiniteLossError(UserError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


class PendingMetrics:
  """Step metrics kept on the device until a log point; checks the loss is finite.

  Its host-side state (the steps not yet logged, the last logged means, the throughput clock)
  goes into each checkpoint's record (`run_state`) and comes back on resume (`run`), so a
  stopped or re-run workdir logs and summarises as the uninterrupted run did.
  """

  def __init__(self, run=None):
    run = run or {}
    dtypes = run.get('window_dtypes', {})
    window = [(s, m, rest[0] if rest else {})  # [step, values, their non-finite kinds]
              for s, m, *rest in run.get('window', [])]
    self._items: List[Tuple[int, dict]] = [
        (int(s), {k: np.asarray(jsonio.number(v, kinds.get(k)), dtypes.get(k, 'float32'))
                  for k, v in m.items()})
        for s, m, kinds in window]
    self._carried = float(run.get('window_seconds', 0.0))  # the window's seconds before a stop
    self._time = time.time()
    self.steps_timed = int(run.get('steps_timed', 0))  # over the whole run, evaluation excluded
    self.seconds = float(run.get('seconds', 0.0))
    kinds = run.get('last_train_nonfinite', {})
    self.last = {k: jsonio.number(v, kinds.get(k))  # the last flush's means
                 for k, v in run.get('last_train', {}).items()}
    self.flops_per_step = run.get('flops_per_step')

  def add(self, step: int, metrics: dict) -> None:
    self._items.append((step, metrics))

  def _values(self) -> List[dict]:
    values = jax.device_get([m for _, m in self._items])
    for (step, _), m in zip(self._items, values):
      if not np.isfinite(m['train/loss']):
        raise NonFiniteLossError(
            f'the training loss is {m["train/loss"]} at step {step}; the last good checkpoint '
            'is kept: lower config.optim.lr or a method weight, or use model.dtype=float32')
    return values

  def flush(self, unit: throughput.Unit) -> Dict[str, float]:
    """Means over the steps since the last flush with `unit.key` (e.g. train/images_per_sec) and
    the FLOP figures; raises NonFiniteLossError naming the step."""
    if not self._items:
      return {}
    values = self._values()
    now = time.time()
    seconds = now - self._time + self._carried
    means = {k: float(np.mean([m[k] for m in values])) for k in values[0]}
    steps_per_sec = len(values) / max(seconds, 1e-9)
    self.steps_timed += len(values)
    self.seconds += seconds
    means[unit.key] = unit.per_sec(steps_per_sec, means)
    means.update(throughput.throughput_metrics(self.flops_per_step, steps_per_sec))
    self._items, self._time, self._carried, self.last = [], now, 0.0, means
    return means

  def restart_clock(self) -> None:
    """Excludes evaluation, checkpoint and compile time from the throughput."""
    self._time = time.time()

  def run_state(self) -> dict:
    """The JSON-able state a resume needs (raises NonFiniteLossError like `flush`)."""
    values = self._values()
    return {'window': [[s, jsonio.jsonable(m), jsonio.kinds(m)]
                       for (s, _), m in zip(self._items, values)],
            'window_dtypes': {k: np.asarray(v).dtype.name for k, v in
                              (values[0] if values else {}).items()},
            'window_seconds': self._carried + time.time() - self._time,
            'steps_timed': self.steps_timed, 'seconds': self.seconds,
            'last_train': jsonio.jsonable(self.last),
            'last_train_nonfinite': jsonio.kinds(self.last),
            'flops_per_step': self.flops_per_step}

  def summary(self, unit: throughput.Unit) -> Dict[str, float]:
    """The training figures of `summary.json`: the last logged loss, and `unit`/s and FLOPs over
    every timed step of the run (all of its resumptions); a unit counted by a step metric
    (tokens) keeps no count over the run: its figure is the last log point's."""
    steps_per_sec = self.steps_timed / max(self.seconds, 1e-9)
    per_sec = (self.last.get(unit.key, float('nan')) if unit.metric
               else unit.per_sec(steps_per_sec, {}))
    return {'train/loss': self.last.get('train/loss', float('nan')), unit.key: per_sec,
            **throughput.throughput_metrics(self.flops_per_step, steps_per_sec)}


def read_summary(path: str, total_steps: int) -> Optional[dict]:
  """The summary at `path` if it is strict JSON of a run of `total_steps` steps, else None."""
  try:
    summary = jsonio.loads(workdir_path.path(path).read_text())
  except (OSError, ValueError):
    return None
  if not isinstance(summary, dict) or summary.get('steps') != total_steps or not isinstance(
      summary.get('train/loss'), float):
    return None
  return {k: jsonio.number(v) if v is None else v for k, v in summary.items()}  # null: NaN


def finished_summary(checkpointer, path: str, total_steps: int) -> Optional[dict]:
  """The summary of a run that already finished (its last checkpoint at `total_steps`, verified,
  and its summary at `path` readable): a re-run returns it and changes nothing. `checkpointer`
  is closed then; None (checkpointer open) otherwise."""
  if checkpointer.latest_step() != total_steps:
    return None
  finished = read_summary(path, total_steps)
  if finished is None or not checkpointer.verified(total_steps):
    return None
  checkpointer.close()
  return finished


def write_summary(path: str, summary: dict) -> None:
  """Strict JSON (NaN and inf as null: `jsonio`), written to a temporary file and renamed."""
  workdir_path.write_text(workdir_path.path(path), jsonio.dumps(summary, indent=2,
                                                                sort_keys=True))
