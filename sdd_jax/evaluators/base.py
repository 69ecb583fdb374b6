"""The evaluator contract.

An evaluator is built by name from its config section and called with padded + masked global
eval batches and named predict functions, never the parameter tree. Counts reduce to sums on
the device; metrics that need every score are gathered to the host and use `metrics.py`.
Artefacts go to `<workdir>/evals/<key>/`.
"""
import dataclasses
from typing import Callable, Dict, Iterable, Optional

import jax


@dataclasses.dataclass(frozen=True)
class Predictors:
  """What an evaluator may call. `logits_fn(images [batch, H, W, C]) -> logits [batch, C]`."""
  logits_fn: Callable[[jax.Array], jax.Array]
  input_grad_fn: Optional[Callable] = None


class Evaluator:
  """Base class: `__call__(batches, predict) -> {'<section>/<name>': float}`."""
  name = ''

  def __init__(self, section=None, *, workdir: str = '', prefix: str = 'test'):
    self.section = section
    self.workdir = workdir
    self.prefix = prefix

  def __call__(self, batches: Iterable[Dict[str, jax.Array]],
               predict: Predictors) -> Dict[str, float]:
    raise NotImplementedError
