"""`evaluate.py --follow`: classification's evaluation beside a running training.

A job of its own on the training's workdir (local or `gs://`), so the expensive sections
(FGSM, corruption, ODIN: `in_training=False` in the run's `config.evals`) never pause the
training's chips:

1. build the model, the sections (`evaluation.merge_evals`: those `evaluate.py` would run, or
   `--evals`) and the one runner once, so each checkpoint costs a restore and the evaluators;
2. poll `checkpoints/` every `interval_s` seconds for steps whose save finished (their record
   is written: `records.recorded_steps`) and that `follow/record.json` does not hold;
3. evaluate each one, oldest first, exactly as `evaluate.py --step N` would: the results go to
   `follow/<step>/evals/` and TensorBoard (`follow/tensorboard`, at that step), then the step
   joins the record (`workdir/followed.py`: the record is the truth, so a killed follower
   started again skips what it holds);
4. stop once `summary.json` has appeared and every checkpoint listed after it is done. The
   sections training left out (`in_training=False`, or absent from the run's config) are then
   copied from the last step into the workdir's own `evals/`, and `evals/report.md` is
   rewritten, so `python -m sdd_jax.report` tabulates them as if training had run them.

One process (evaluate.py is never distributed), on any number of its devices. Read-only
towards the training: no lock or lease is taken, no checkpoint is created, moved
or removed (the restore is `read_only`); a checkpoint that `max_to_keep` removes between the
listing and the read is recorded as skipped with a note. A run that writes no checkpoint and
no summary for `idle_s` seconds stops the follower with one line.
"""
import dataclasses
import logging
import time
from typing import Any, Dict, List, Optional, Sequence

from sdd_jax import data as data_lib
from sdd_jax import methods as methods_lib
from sdd_jax import parallel
from sdd_jax.classification import evaluation as evaluation_lib
from sdd_jax.config import validation as config_validation
from sdd_jax.errors import UserError
from sdd_jax.evaluators import report as report_lib
from sdd_jax.evaluators import runner as runner_lib
from sdd_jax.evaluators import sections as sections_lib
from sdd_jax.models import build as models_build
from sdd_jax.workdir import followed
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.workdir import records as checkpoint_record
from sdd_jax.workdir import writers as metric_writers
from sdd_jax.workdir.restore import EvaluationError


class _Follower:
  """The model, mesh and runner of one follow, and how one step is evaluated."""

  def __init__(self, workdir: str, config, overrides, names):
    self.workdir = workdir
    self.run_evals = config.evals.to_dict() if 'evals' in config else {}
    config = evaluation_lib.merge_evals(config, overrides, names)
    config_validation.validate(config)
    self.config = config
    self.mesh = parallel.create_mesh()
    self.model = models_build.create_model(config)
    eval_source = data_lib.create_source(config.data, config.data.eval_split)
    self.runner = runner_lib.Runner(config, self.model, self.mesh, workdir,
                                    methods_lib.create_methods(config.methods),
                                    sources={config.data.eval_split: eval_source})
    self.writer = None  # TensorBoard, opened at the first step evaluated

  def evaluate(self, step: int) -> Dict[str, Any]:
    """The record entry of checkpoint `step`, its results written."""
    try:
      variables, _ = evaluation_lib.restore_checkpoint_variables(
          self.config, self.workdir, self.mesh, self.model, step)
    except UserError as e:  # EvaluationError, CheckpointError
      return {'metrics': {}, 'skipped': {}, 'note': self._unreadable(step, e)}
    target = followed.step_workdir(self.workdir, step)
    leftover = workdir_path.path(target)
    if leftover.exists():  # a killed follower's partial results of this step
      leftover.rmtree()
    contexts = {split: dataclasses.replace(ctx, workdir=target)
                for split, ctx in self.runner.contexts.items()}
    outcome = runner_lib.run(list(self.runner.runs.values()), contexts,
                             self.runner.predictors(variables))
    report_lib.write_report(target, {'checkpoint step': step, 'model': self.config.model.name,
                                     'evaluators': ', '.join(self.runner.runs)})
    if self.writer is None:
      tensorboard = (metric_writers.TensorBoardWriter if workdir_path.is_local(self.workdir)
                     else metric_writers.UploadingTensorBoardWriter)
      self.writer = tensorboard(followed.tensorboard_dir(self.workdir))
    self.writer.write_scalars(step, metric_writers.scalars_of(outcome.metrics))
    self.writer.flush()
    return {'metrics': outcome.metrics, 'skipped': outcome.skipped, 'note': ''}

  def _unreadable(self, step: int, error: Exception) -> str:
    folder = workdir_path.path(self.workdir) / 'checkpoints' / str(step)
    if not folder.exists():
      return f'checkpoint {step} was removed (max_to_keep) before it was read'
    return f'checkpoint {step} cannot be read: {error}'

  def fill_in(self, step: int) -> None:
    """Copies the results of the sections training left out from `follow/<step>/evals/` into
    the workdir's `evals/` and rewrites `evals/report.md`."""
    source = workdir_path.path(followed.step_workdir(self.workdir, step)) / 'evals'
    evals = workdir_path.path(self.workdir) / 'evals'
    for key, run in self.runner.runs.items():
      if self._ran_in_training(key, run) or not (source / key).is_dir():
        continue
      (evals / key).mkdir(parents=True, exist_ok=True)
      for name in sorted(p.name for p in (source / key).iterdir()):
        workdir_path.write_bytes(evals / key / name, (source / key / name).read_bytes())
    report_lib.write_report(self.workdir, {'checkpoint step': step,
                                           'model': self.config.model.name})

  def _ran_in_training(self, key: str, run: runner_lib.Run) -> bool:
    """Whether the training's runner ran section `key` (or, for a method's derived accuracy
    run `<parent>_<pred>`, its parent) at the end."""
    section = self.run_evals.get(key)
    if section is None and run.pred and key.endswith(f'_{run.pred}'):
      section = self.run_evals.get(key[:-len(run.pred) - 1])
    return section is not None and sections_lib.in_training(section)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()


def follow(workdir: str, config, overrides: Optional[Dict[str, Any]] = None,
           names: Optional[Sequence[str]] = None, *, interval_s: float, idle_s: float,
           out=print) -> List[int]:
  """Evaluates each finished checkpoint of `workdir` (whose config is `config`) once, as the
  training writes them, until its `summary.json` is there and every checkpoint is done;
  returns the steps this call evaluated (`out`: one line per step)."""
  record = followed.read(workdir)
  follower = _Follower(workdir, config, overrides, names)
  evaluated: List[int] = []
  last_news = time.monotonic()
  try:
    while True:
      final = followed.final_step(workdir)  # before listing: no checkpoint is missed
      directory = workdir_path.path(workdir) / 'checkpoints'
      pending = [s for s in checkpoint_record.recorded_steps(directory) if s not in record]
      for step in pending:
        entry = follower.evaluate(step)
        record[step] = entry
        followed.write(workdir, record)  # after the results: the record is the truth
        if entry['note']:
          out(f'skipped step {step}: {entry["note"]}')
        else:
          evaluated.append(step)
          out(f'evaluated step {step}: {len(entry["metrics"])} metrics, '
              f'{followed.step_workdir(workdir, step)}')
        last_news = time.monotonic()
      if final is not None:
        if final in record and not record[final]['note']:
          follower.fill_in(final)
        return evaluated
      if not pending and time.monotonic() - last_news > idle_s:
        raise EvaluationError(f'--follow: no new checkpoint and no summary.json in {workdir} '
                              f'for {idle_s:g} s; is train.py running? (--follow_idle waits '
                              'longer)')
      if not pending:
        time.sleep(interval_s)
  finally:
    follower.close()
    logging.info('follow of %s: evaluated steps %s', workdir, evaluated)
