"""The one evaluation runner: what training (`trainer.make_evaluate`, periodic and final) and
evaluate.py (`evaluation.evaluate_workdir`) run.

1. `plan`: one `Run` per `config.evals` section (`sections.py`: key, type, pred, split), plus,
   for each accuracy section on the plain network, one per extra predictor of the methods
   (`methods.eval_logits`: DML's network 1 and ensemble), keyed `<key>_<pred>`, with metrics
   under the predictor's prefix (`dml/net1/top1`, as training always reported them), unless a
   section already runs accuracy with that predictor on that split or the method lists it in
   `on_request` (SD-Dropout's `dropout_ensemble`: it runs only where a section names it);
2. one `Predictors` per predictor (jitted over the mesh; the plain network sees
   `methods.inference_variables`, a method's predictor the whole variable tree) and one
   `EvalContext` per split whose cache the evaluators of one evaluation share: accuracy,
   calibration and corruption's clean accuracy predict a (predictor, split) once;
3. `run`: the due runs in key order; each one's metrics go to `<workdir>/evals/<key>/
   results.json`. A skipped run (or an OOD set of one: odin's `skipped/...` keys) is a status,
   `Outcome.skipped = {key: one-line reason}`, recorded in results.json (so report.md) and the
   summary, never a metric.
"""
import dataclasses
import functools
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import ml_collections

from sdd_jax import data as data_lib
from sdd_jax import methods as methods_lib
from sdd_jax.evaluators import EVALUATORS
from sdd_jax.evaluators import base
from sdd_jax.evaluators import predict
from sdd_jax.evaluators import results as results_lib
from sdd_jax.evaluators import sections

SKIPPED = 'skipped/'


@dataclasses.dataclass(frozen=True)
class Run:
  """One section to run: `evaluator` (of type `kind`) with predictor `pred` on `split`;
  `section` as configured (before the evaluator's defaults)."""
  key: str
  kind: str
  evaluator: base.Evaluator
  pred: str
  split: str
  section: Dict[str, Any]

  @property
  def renamed(self) -> bool:
    """Whether its metric keys move into its key (`sections.rename`)."""
    return self.key != self.kind and not sections.sets_prefix(self.section,
                                                              self.evaluator.defaults)

  def due(self, epoch: Optional[int], training: bool = False) -> bool:
    """After training (`epoch` None) always; else every `every_epochs` epochs (0: never).
    `training`: never when the section says `in_training=False` (`sections.in_training`)."""
    if training and not sections.in_training(self.section):
      return False
    every = self.evaluator.every_epochs
    return epoch is None or bool(every and epoch % every == 0)


@dataclasses.dataclass
class Outcome:
  metrics: Dict[str, float]  # every metric of the runs that ran
  skipped: Dict[str, str]  # key (or key/set) -> one-line reason


def _run(key: str, section: Mapping[str, Any], eval_split: str) -> Run:
  section = dict(section)
  kind = sections.section_type(key, section)
  return Run(key=key, kind=kind, evaluator=EVALUATORS.get(kind)(section, key=key),
             pred=section.get('pred') or '', split=section.get('split') or eval_split,
             section=section)


def plan(evals_config, predictors: Mapping[str, str], eval_split: str) -> Dict[str, Run]:
  """{key: Run} of `evals_config` plus the derived accuracy runs of the methods' predictors
  (`predictors`: {pred name: metric prefix}, e.g. {'net1': 'dml/net1'}), in key order."""
  runs = {key: _run(key, evals_config[key], eval_split) for key in sorted(evals_config or {})}
  taken = {(r.pred, r.split) for r in runs.values() if r.kind == 'accuracy'}
  for parent in list(runs.values()):
    if parent.kind != 'accuracy' or parent.pred:
      continue
    for name, prefix in predictors.items():
      key = f'{parent.key}_{name}'
      if key in runs or (name, parent.split) in taken:
        continue
      if parent.renamed:
        prefix = f'{parent.key}/{prefix}'
      elif parent.evaluator.namespace != parent.evaluator.defaults['prefix']:
        prefix = f'{parent.evaluator.namespace}/{prefix}'
      runs[key] = _run(key, {**parent.section, 'type': 'accuracy', 'pred': name,
                             'prefix': prefix}, eval_split)
  return dict(sorted(runs.items()))


def run(runs: Sequence[Run], contexts: Mapping[str, base.EvalContext],
        predictors: Mapping[str, base.Predictors]) -> Outcome:
  """Runs `runs` with the context of their split and their predictor; writes each one's
  results.json. The contexts get a fresh shared cache (one prediction pass per predictor and
  split, for this call only: the variables change between calls)."""
  contexts = {split: dataclasses.replace(ctx, cache={}) for split, ctx in contexts.items()}
  for r in runs:  # e.g. calibration asks the shared pass for its per-example rows
    r.evaluator.prepare(contexts[r.split], predictors[r.pred])
  metrics, skipped = {}, {}
  for r in runs:
    ctx = contexts[r.split]
    workdir, data_config = ctx.workdir, ctx.data_config
    try:
      values = r.evaluator(ctx, predictors[r.pred])
    except base.Skipped as e:
      logging.warning('evaluator %s skipped: %s', r.key, e)
      skipped[r.key] = str(e)
      results_lib.merge_metrics(workdir, r.key, data_config=data_config, metrics={},
                                skipped=str(e))
      continue
    partly = [k[len(SKIPPED):] for k in values if k.startswith(SKIPPED)]
    if partly:  # e.g. skipped/odin/isun: one OOD set's data is missing, the others ran
      record = results_lib.read_results(workdir, r.key) or {}
      reasons = (record.get('details') or {}).get('skipped_sets') or {}
      for name in partly:
        part = name.split('/')[-1]
        skipped[f'{r.key}/{part}'] = reasons.get(part, 'its data is missing (see the log)')
    values = {k: v for k, v in values.items() if not k.startswith(SKIPPED)}
    if r.renamed:
      values = sections.rename(r.key, values, r.evaluator.namespace)
    results_lib.merge_metrics(workdir, r.key, data_config=data_config, metrics=values)
    metrics.update(values)
  return Outcome(metrics=metrics, skipped=skipped)


def _split_config(data_config, split: str):
  """`data_config` for evaluating `split` (its canonical order, labels, ...)."""
  if split == data_config.eval_split:
    return data_config
  out = ml_collections.ConfigDict(data_config.to_dict())
  out.eval_split = split
  return out


class Runner:
  """`runner(variables, epoch=None) -> Outcome`: the sections of `config.evals` due at `epoch`
  (all after training: None) on the train state's `variables` (the whole tree)."""

  def __init__(self, config, model, mesh, workdir: str, methods=(),
               sources: Optional[Mapping[str, Any]] = None, training: bool = False):
    """`training`: the runner of a training run, which leaves out the sections with
    `in_training=False`."""
    self.methods = tuple(methods)
    self.training = training
    apply_fns: Dict[str, Optional[Callable]] = {'': None}
    prefixes = {}
    for prefix, fn in methods_lib.eval_logits(self.methods).items():
      apply_fns[sections.predictor_name(prefix)] = fn
      prefixes[sections.predictor_name(prefix)] = prefix
    on_request = methods_lib.on_request(self.methods)  # only where a section names them
    self.runs = plan(config.evals, {n: p for n, p in prefixes.items() if p not in on_request},
                     config.data.eval_split)
    self._logits = {name: predict.make_logits_fn(model, mesh, fn)
                    for name, fn in apply_fns.items()}
    self._grads = {name: predict.make_input_grad_fn(model, mesh, fn)
                   for name, fn in apply_fns.items()}
    sources = dict(sources or {})
    self.contexts = {}
    for split in sorted({r.split for r in self.runs.values()}):
      if split not in sources:  # a split a section names (validation allows the configured ones)
        sources[split] = data_lib.create_source(config.data, split)
      self.contexts[split] = base.EvalContext(
          data_config=_split_config(config.data, split), batch_size=config.eval_batch_size,
          mesh=mesh, source=sources[split], workdir=workdir)

  def predictors(self, variables) -> Dict[str, base.Predictors]:
    """{pred name: Predictors} bound to `variables` (the whole tree)."""
    plain = methods_lib.inference_variables(self.methods, variables)
    out = {}
    for name in self._logits:
      bound = plain if name == '' else variables
      out[name] = base.Predictors(logits_fn=functools.partial(self._logits[name], bound),
                                  input_grad_fn=functools.partial(self._grads[name], bound))
    return out

  def __call__(self, variables, epoch: Optional[int] = None) -> Outcome:
    due = [r for r in self.runs.values() if r.due(epoch, self.training)]
    if not due:
      return Outcome(metrics={}, skipped={})
    return run(due, self.contexts, self.predictors(variables))
