"""`temperature`: temperature scaling (Guo et al. 2017), fitted on examples the network never
trained on, and the eval split's ECE, NLL and top-1 before and after it.

Where T* is fitted (`fit_split`; docs/evaluation.md, "Temperature scaling"):

- '' (default, auto): the data set's `validation` split when it has one that is neither the
  eval split nor part of `data.train_split` (tfds: the builder's splits hold 'validation';
  npz: `<data.path>/validation.npz` exists; folder: `<data.path>/validation/` exists) ->
  `fit` 'validation'; otherwise two-fold cross-fitting on the eval split -> 'cross_fit';
- 'cross_fit': cross-fitting, always. The examples with an even source index and those with an
  odd one are the folds; T fitted on one fold scores the other, and "after" covers all N
  examples, each scored with the T of the fold it is not in. `t_star` is then the T fitted on
  all N examples (descriptive; it scores nothing); both folds' T are in the details;
- any other split name: fitted there. A tfds slice of a split that `data.train_split` also
  slices (`'train[45000:]'` beside `data.train_split='train[:45000]'`) is a held-out part of the
  training set -> 'holdout' (the slices must not overlap: checked from the split strings at
  validation); any other split -> 'validation'. npz and folder sources have no slices: write
  the held-out examples to a file of their own (`<data.path>/<name>.npz`) and name it.

Keys: `temperature/t_star`, `/ece_before`, `/ece_after`, `/top1_before`, `/top1_after` (%),
`/nll_before`, `/nll_after` (nats), `/count` (N), `/nonfinite` (examples with a NaN or ±inf
logit: left out of the fit, scored wrong with NLL +inf and confidence 1.0, as everywhere).
The logits are gathered to the host once per split (`host_logits`, shared through `ctx.cache`,
which also receives the plain pass of `accuracy.accumulate_sums` when it is not there yet).
Artefacts in `<workdir>/evals/<key>/`: `reliability.png` (+ `.json`): before and after, each
panel with both curves; `results.json` with `details.fit` and the optimiser.
"""
import os
from typing import Dict, Optional, Tuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from sdd_jax import data as data_lib
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import results as results_lib
from sdd_jax.metrics import plotting
from sdd_jax.metrics import temperature as temperature_lib

PLOT = 'reliability.png'
CROSS_FIT = 'cross_fit'
LABEL = ('Temperature scaling (Guo et al. 2017): one T* > 0, softmax(z / T*), fitted by '
         'minimising the NLL on examples the network never trained on (details.fit: '
         "'validation', 'cross_fit' or 'holdout'; docs/evaluation.md). ECE: 10 equal-width "
         'bins, in %; NLL in nats; before = the raw model.')


def split_names(spec: str) -> set:
  """The split names a tfds split string reads: 'train[:90%]+validation' -> {'train',
  'validation'}."""
  return {part.split('[')[0].strip() for part in str(spec).split('+') if part.strip()}


def _has_tfds_validation(data_config) -> bool:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return 'validation' in tfds.builder(data_config.name, data_dir=data_config.data_dir).info.splits
  except Exception:  # pylint: disable=broad-except  # not prepared, unknown: no validation split
    return False


# source -> does the data set have a split named 'validation'? (sources not here: no)
VALIDATION_PROBES = {
    'tfds': _has_tfds_validation,
    'npz': lambda c: bool(c.path) and os.path.isfile(os.path.join(c.path, 'validation.npz')),
    'folder': lambda c: bool(c.path) and os.path.isdir(os.path.join(c.path, 'validation')),
}


def fit_plan(data_config, fit_split: str) -> Tuple[str, str]:
  """-> (fit method, the split T* is fitted on; '' for cross-fitting), as the module docstring
  says."""
  if fit_split == CROSS_FIT:
    return CROSS_FIT, ''
  if not fit_split:
    probe = VALIDATION_PROBES.get(data_config.source)
    usable = ('validation' not in split_names(data_config.eval_split)
              and 'validation' not in split_names(data_config.train_split))
    return ('validation', 'validation') if usable and probe and probe(data_config) else (
        CROSS_FIT, '')
  held_out = split_names(fit_split) & split_names(data_config.train_split)
  return ('holdout' if held_out else 'validation'), fit_split


def _intervals(spec: str, size: int):
  """[(split name, start, stop)] that tfds reads for `spec`, resolved as if every split held
  `size` examples; None when that is not exact (a negative bound: it counts from the end)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  out, units = [], set()
  for part in spec.split('+'):
    leaf = tfds.core.ReadInstruction.from_spec(part.strip())
    if any(b is not None and b < 0 for b in (leaf.from_, leaf.to)):
      return None, units
    units.add(leaf.unit)
    sizes = {leaf.split_name: type('Info', (), {'num_examples': size})}
    for a in leaf.to_absolute(sizes):
      out.append((a.splitname, a.from_ or 0, size if a.to is None else a.to))
  return out, units


def slices_overlap(train_split: str, fit_split: str) -> Optional[bool]:
  """Whether tfds split strings `train_split` and `fit_split` share an example; None when the
  strings alone cannot tell (a mix of % and absolute bounds, or a negative bound)."""
  size = 10 ** 12  # any size: both strings use one unit, so their bounds compare directly
  train, train_units = _intervals(train_split, size)
  fit, fit_units = _intervals(fit_split, size)
  if train is None or fit is None or len(train_units | fit_units) > 1:
    return None
  return any(a[0] == b[0] and max(a[1], b[1]) < min(a[2], b[2]) for a in train for b in fit)


def _host_rows(x: jax.Array, mask: jax.Array) -> np.ndarray:
  """The masked rows of a global batch array, on the host, in batch order."""
  if jax.process_count() > 1:
    x, mask = (multihost_utils.process_allgather(v, tiled=True) for v in (x, mask))
  x, mask = jax.device_get((x, mask))
  return np.asarray(x)[np.asarray(mask, bool)]


def host_logits(ctx, predict, source=None) -> Dict[str, np.ndarray]:
  """{'logits' `[n, classes]` float32, 'labels' `[n]`, 'index' `[n]` (source index)} of every
  example of `source` (default: the eval split), gathered in one pass. Over the eval split it is
  shared through `ctx.cache`, and the same pass fills `accuracy.accumulate_sums`' entry."""
  key = ('host_logits', predict.logits_fn)
  if source is None and ctx.cache is not None and key in ctx.cache:
    return ctx.cache[key]
  parts, total = {'logits': [], 'labels': [], 'index': []}, None
  for batch in ctx.batches(source):
    logits = predict.logits_fn(batch['images'])
    for name, value in (('logits', logits), ('labels', batch['labels']),
                        ('index', batch['index'])):
      parts[name].append(_host_rows(value, batch['mask']))
    if source is None:
      sums = jax.device_get(accuracy.batch_sums(logits, batch['labels'], batch['mask']))
      sums = jax.tree.map(lambda x: np.asarray(x, np.float64), sums)
      total = sums if total is None else jax.tree.map(np.add, total, sums)
  out = {name: np.concatenate(value) for name, value in parts.items()}
  if source is None and ctx.cache is not None:
    ctx.cache[key] = out
    ctx.cache.setdefault(('accumulate_sums', predict.logits_fn), total)
  return out


class Temperature(base.Evaluator):
  name = 'temperature'
  defaults = {'every_epochs': 0, 'fit_split': ''}

  @classmethod
  def check_data(cls, section, data_config) -> None:
    fit_split, where = section.get('fit_split') or '', 'config.evals.temperature.fit_split'
    if fit_split in ('', CROSS_FIT):
      return
    if split_names(fit_split) & split_names(data_config.eval_split):
      raise ValueError(f"{where}: must not read the eval split {data_config.eval_split!r} "
                       f"(T* would be fitted on the examples it is scored on); use '' (auto) or "
                       f"'{CROSS_FIT}', got {fit_split!r}")
    if data_config.source != 'tfds' and ('[' in fit_split or '+' in fit_split
                                         or fit_split == data_config.train_split):
      raise ValueError(f'{where}: {data_config.source} sources have no split slices; write the '
                       f'held-out examples to a file of their own (<data.path>/<name>) and name '
                       f'it, got {fit_split!r}')
    if fit_plan(data_config, fit_split)[0] == 'holdout':
      if slices_overlap(data_config.train_split, fit_split) is not False:
        raise ValueError(f'{where}: {fit_split!r} must be a part of the training set that '
                         f'data.train_split={data_config.train_split!r} leaves out, e.g. '
                         "fit_split='train[45000:]' with data.train_split='train[:45000]' "
                         '(one unit, no negative bounds, so that the strings show it)')

  def __call__(self, ctx, predict):
    method, split = fit_plan(ctx.data_config, self.section['fit_split'] or '')
    evaluation = host_logits(ctx, predict)
    logits, labels = evaluation['logits'], evaluation['labels']
    try:
      if method == CROSS_FIT:
        temperatures, folds = temperature_lib.cross_fit(logits, labels, evaluation['index'])
        fit = temperature_lib.fit_temperature(logits, labels)
      else:
        try:
          source = data_lib.create_source(ctx.data_config, split)
        except data_lib.DataError as e:
          raise base.Skipped(f'the fit split {split!r}: {e}') from None
        fitted = host_logits(ctx, predict, source)
        fit, folds = temperature_lib.fit_temperature(fitted['logits'], fitted['labels']), {}
        temperatures = np.full(len(logits), fit['t'])
    except ValueError as e:  # no finite logits to fit on
      raise base.Skipped(f'temperature scaling: {e}') from None
    before = temperature_lib.score(logits, labels, np.ones(len(logits)))
    after = temperature_lib.score(logits, labels, temperatures)
    count = len(logits)
    out = {'temperature/t_star': fit['t'],
           'temperature/ece_before': 100 * before['ece'],
           'temperature/ece_after': 100 * after['ece'],
           'temperature/nll_before': before['nll'], 'temperature/nll_after': after['nll'],
           'temperature/top1_before': 100 * before['top1'],
           'temperature/top1_after': 100 * after['top1'],
           'temperature/count': float(count),
           'temperature/nonfinite': float(np.sum(~np.all(np.isfinite(logits), axis=-1)))}
    self._write(ctx, out, method, split, fit, folds, before, after, count)
    return out

  def _write(self, ctx, out, method, split, fit, folds, before, after, count) -> None:
    t_label = 'T per fold' if method == CROSS_FIT else f'T* = {fit["t"]:.3f}'
    panels = {'before (T = 1)': (before['table'], before['ece'], count),
              f'after ({t_label})': (after['table'], after['ece'], count)}
    curves = {'before (T = 1)': before['table'], f'after ({t_label})': after['table']}
    if jax.process_index() == 0:
      directory = ctx.artefact_dir(self.key)
      plotting.reliability_panels(panels, directory / PLOT, curves=curves)
    rows = [(name, 100 * r['top1'], r['nll'], 100 * r['ece'])
            for name, r in (('before (T = 1)', before), (f'after ({t_label})', after))]
    results_lib.write_results(
        ctx.workdir, self.key, data_config=ctx.data_config, metrics=out, label=LABEL,
        details={'fit': method, 'fit_split': split or ctx.data_config.eval_split,
                 'optimizer': temperature_lib.OPTIMIZER, 't_star': fit,
                 'folds': folds, 'n': count, 'confidence_before': before['confidence'],
                 'confidence_after': after['confidence'], 'bins_before': before['table'],
                 'bins_after': after['table']},
        tables=[results_lib.table(f'Temperature scaling (fit: {method})',
                                  ('model', 'top-1 %', 'NLL', 'ECE %'), rows)],
        plots=[PLOT])
