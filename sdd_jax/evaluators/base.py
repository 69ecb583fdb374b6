"""The evaluator contract.

An evaluator is built by name from its config section (`config.evals.<key>`, of `type` name:
`sections.py`) and called with an `EvalContext` (padded + masked global eval batches of any
source) and named predict functions (`Predictors`), never the parameter tree. Counts reduce to
sums on the device; metrics that need every score are gathered to the host and use
`metrics.py`. Artefacts go to `<workdir>/evals/<key>/`. `prepare(ctx, predict)`, called by the
runner for every run before any runs, lets an evaluator ask a pass shared through `ctx.cache`
for more (calibration's per-example rows). Every section has `every_epochs` (0: only after
training). `runner.py` runs the sections, for training and for evaluate.py.
"""
import dataclasses
from typing import Any, Callable, Dict, Iterator, Optional

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from sdd_jax import data as data_lib
from sdd_jax import parallel
from sdd_jax.workdir import paths as workdir_path


class Skipped(Exception):
  """An evaluator cannot run (e.g. its data set is missing); the message says what to fetch."""


@dataclasses.dataclass(frozen=True)
class Predictors:
  """What an evaluator may call (jitted over the mesh, evaluation mode, float32).

  logits_fn(images [batch, H, W, C]) -> logits [batch, classes].
  input_grad_fn(images, labels [batch], temperature: a Python number) -> d/d images of
      sum_i CE(logits_i / temperature, labels_i), [batch, H, W, C] (docs/evaluation.md §0.5).
  """
  logits_fn: Callable[[jax.Array], jax.Array]
  input_grad_fn: Optional[Callable[..., jax.Array]] = None


@dataclasses.dataclass(frozen=True)
class EvalContext:
  """Where evaluation data comes from. Every batch is padded (rows with `mask` False) to split
  over the mesh, so an evaluator must weigh every sum, count and score by `mask`.

  Attributes:
    data_config: `config.data` (preprocessing, normalisation constants, splits).
    batch_size: the global eval batch size.
    mesh: the device mesh; batches come sharded over 'data'.
    source: the in-distribution evaluation split.
    workdir: the run's workdir (artefacts go to `<workdir>/evals/<key>/`).
    cache: results shared by the evaluators of one evaluation of one split (e.g. the plain
      prediction pass, `accuracy.accumulate_sums`), keyed by what computed them; None: none.
  """
  data_config: Any
  batch_size: int
  mesh: Any
  source: Any
  workdir: str
  cache: Optional[Dict[Any, Any]] = dataclasses.field(default=None, compare=False)

  def batches(self, source=None) -> Iterator[Dict[str, jax.Array]]:
    """Global padded batches (`images`, `labels`, `index`, `mask`) covering `source` (default:
    the eval split) exactly once: `batch_size` examples per batch, padded with masked rows to a
    multiple of the device and process counts (`parallel.eval_batch_rows`); images sent as uint8,
    normalised float32 on the device."""
    rows = parallel.eval_batch_rows(self.batch_size, self.mesh.devices.size,
                                    jax.process_count())
    host_batches = data_lib.create_eval_batches(
        self.source if source is None else source, self.data_config,
        global_batch=self.batch_size, process_index=jax.process_index(),
        process_count=jax.process_count(), padded_batch=rows)
    return (data_lib.normalize_eval_batch(parallel.to_global(b, self.mesh), self.data_config)
            for b in host_batches)

  def artefact_dir(self, name: str) -> epath.Path:
    """`<workdir>/evals/<name>` (a local folder or a `gs://` prefix), created by process 0."""
    path = workdir_path.path(self.workdir) / 'evals' / name
    if jax.process_index() == 0:
      path.mkdir(parents=True, exist_ok=True)
    return path


def host_rows(values: Any, mask: jax.Array) -> Any:
  """The masked rows of global `[batch]` arrays (one array or a pytree of them), on the host as
  NumPy, in batch order: every process gets every row."""
  if jax.process_count() > 1:
    values, mask = multihost_utils.process_allgather((values, mask), tiled=True)
  values, mask = jax.device_get((values, mask))  # explicit: the training loop's transfer guard
  keep = np.asarray(mask, bool)
  return jax.tree.map(lambda x: np.asarray(x)[keep], values)


class Evaluator:
  """Base class: `__call__(ctx, predict) -> {'<section>/<name>': float}`. `key`: the config
  section's key, where its artefacts go (default: the evaluator's name)."""
  name = ''
  defaults: Dict[str, Any] = {'every_epochs': 0}

  def __init__(self, section=None, key: str = ''):
    self.section = {**self.defaults, **dict(section or {})}
    self.key = key or self.name

  @property
  def namespace(self) -> str:
    """The leading part of the metric keys this evaluator returns."""
    return self.name

  @classmethod
  def check_section(cls, section: Dict[str, Any]) -> None:
    """Raises ValueError (one line, naming `config.evals.<name>.<field>`) for a section that
    cannot run; called by config validation, before any workdir is touched."""
    del section

  @classmethod
  def check_data(cls, section: Dict[str, Any], data_config) -> None:
    """Like `check_section`, for what a section asks of `config.data` (e.g. a split that must
    not overlap the training split); from the strings alone, no data is opened."""
    del section, data_config

  @property
  def every_epochs(self) -> int:
    return int(self.section['every_epochs'])

  def prepare(self, ctx: EvalContext, predict: Predictors) -> None:
    """Called by the runner for every run of one evaluation before any runs: a chance to ask
    what a shared pass over `ctx`'s split computes (`ctx.cache`). Default: nothing."""
    del ctx, predict

  def __call__(self, ctx: EvalContext, predict: Predictors) -> Dict[str, float]:
    raise NotImplementedError
