r"""Evaluates a trained workdir: `python evaluate.py --workdir DIR [--evals=a,b] [--config...]`.

Weights from elsewhere: `--init_from F.safetensors` evaluates a file in torchvision's layout
(`python -m sdd_jax.export`, or torchvision's own weights saved with
`safetensors.torch.save_file`) instead of DIR's checkpoint; `--experiment configs/X.py[:arg]`
gives a DIR without a run its config (recorded as DIR/config.json, as train.py would), e.g.

  python evaluate.py --workdir /tmp/tv_resnet152 --init_from resnet152.safetensors \
      --experiment configs/imagenet_resnet152_sdd.py:ce

Reads `DIR/config.json`, restores the newest checkpoint of `DIR/checkpoints` and runs, with
the evaluation runner training uses (sdd_jax/evaluators/runner.py), every registered evaluator
(accuracy, calibration, corruption, fgsm, odin) and every other section of the workdir's
`config.evals` (`evals.<key> = {type, pred, split, ...}`: sdd_jax/evaluators/sections.py);
`--evals` picks some keys. DML's network 1 and ensemble get the accuracy evaluator beside the
plain network (`dml/net1/...`, `dml/ensemble/...`), as in training. Each section starts from
its evaluator's defaults, updated by the workdir's `config.evals` and then by overrides such as

  --config.evals.corruption.path=/data/CIFAR-100-C
  --config.evals.odin.folder_root=/data/odin --config.evals.odin.sets="('svhn','lsun')"
  --config.evals.odin.sets="('svhn','dtd','mine=/data/my_ood_images')"  (quoted: a bare
      list with `=` in it is not a tuple to ml_collections; a bare `svhn,dtd` is one string)
  --config.eval_batch_size=1000

A translation workdir (`config.task == 'translation'`; the task registry `sdd_jax/tasks.py`
picks its evaluation, `sdd_jax/translation/evaluation.py`) is decoded with its own
`config.evals` search (beam size, length penalty, max_len_a/b; no `--config.*` overrides) and
scored on the splits `--evals` names (default `valid,test`): sacreBLEU, tokenised BLEU and NLL
per split, hypotheses in `DIR/evals/translation/<split>.hyp`, figures and the sacreBLEU
signature in `DIR/evals/translation/results.json`.

`--step N` evaluates checkpoint N instead of the newest. `--follow` runs beside a training
on the same DIR (local or gs://; a job of its own, never taking the training's lock or lease):
it evaluates each checkpoint once as it is written, into `DIR/follow/<step>/evals/` and
`DIR/follow/tensorboard`, records each done step in `DIR/follow/record.json` (so, killed and
started again, it skips them), and stops once `DIR/summary.json` has appeared and the last
checkpoint is done (docs/evaluating.md#following-a-running-training).

Classification writes `DIR/evals/<key>/results.json` (+ plots) and `DIR/evals/report.md`,
prints every metric, then one `skipped <key>: <reason>` line per skipped section (a status,
also in its results.json and report.md, never a metric). Exit code: 0 all ran, 3 something
was skipped (its data set is missing: the printed line says what to download and where to put
it), 1 a user error (no workdir, config or checkpoint; a bad value).
"""
import logging
import sys

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from sdd_jax.config import cli as config_cli
from sdd_jax import errors
from sdd_jax import evaluation


if __name__ == '__main__':  # DEFINE_config_dict parses the overrides right away
  # One line and exit 1 for an override naming no field or a value of the wrong type
  # (ml_collections would raise a traceback while parsing flags).
  config_cli.exit_on_error(config_cli.load_overrides, sys.argv, evaluation.evals_template())

_WORKDIR = flags.DEFINE_string('workdir', None, 'The train.py --workdir to evaluate.')
_EVALS = flags.DEFINE_list('evals', None, 'Sections (config.evals keys) to run (default: every '
                           'registered evaluator and every section of the workdir).')
_CONFIG = config_flags.DEFINE_config_dict(
    'config', evaluation.evals_template(),
    'Overrides of config.evals.<name>.<field> and config.eval_batch_size.', lock_config=True)
_INIT_FROM = flags.DEFINE_string('init_from', None, 'Evaluate this safetensors file (torchvision '
                                 'layout) instead of the workdir\'s checkpoint.')
_EXPERIMENT = flags.DEFINE_string('experiment', None, 'configs/<file>.py[:arg]: the config of a '
                                  'workdir that has none yet (with --init_from).')
_STEP = flags.DEFINE_integer('step', None, 'Evaluate checkpoint STEP (one whose save finished) '
                             'instead of the newest.')
_FOLLOW = flags.DEFINE_bool('follow', False, 'Follow a running training: evaluate each new '
                            'checkpoint once, into DIR/follow/, until DIR/summary.json appears.')
_FOLLOW_INTERVAL = flags.DEFINE_float('follow_interval', 30.0, 'With --follow: seconds between '
                                      'two looks at DIR/checkpoints (at most 600).')
_FOLLOW_IDLE = flags.DEFINE_float('follow_idle', 7200.0, 'With --follow: stop (exit 1) after '
                                  'this many seconds without a new checkpoint or summary.json.')
flags.mark_flags_as_required(['workdir'])

EXIT_SKIPPED = 3


def overrides() -> dict:
  """{'evals.odin.sets': value, ...}: the `--config.*` fields given on the command line."""
  out = {}
  for name in flags.FLAGS:
    if name.startswith('config.') and flags.FLAGS[name].present:
      value = _CONFIG.value
      for part in name[len('config.'):].split('.'):
        value = value[part]
      out[name[len('config.'):]] = value
  return out


def follow() -> int:
  """--follow: evaluation.follow_workdir, one line per checkpoint (sdd_jax/classification/
  follow.py)."""
  given = [f'--{f.name}' for f in (_STEP, _INIT_FROM, _EXPERIMENT) if f.present]
  steps = evaluation.follow_workdir(_WORKDIR.value, overrides(), _EVALS.value,
                                    interval_s=_FOLLOW_INTERVAL.value, idle_s=_FOLLOW_IDLE.value,
                                    out=lambda line: print(line, flush=True), given=given)
  print(f'followed {_WORKDIR.value} to its end: {len(steps)} checkpoint(s) evaluated here')
  return 0


def main(argv):
  del argv
  logging.getLogger('absl').setLevel(logging.WARNING)
  # docs/evaluation.md §0.2: true float32 matmuls and convolutions (JAX's GPU default is TF32, whose
  # ~1e-3 relative error would reorder ODIN's T = 1000 scores, spaced ~1e-6 apart).
  jax.config.update('jax_default_matmul_precision', 'float32')
  try:
    if _FOLLOW.value:
      return follow()
    outcome = evaluation.evaluate_workdir(_WORKDIR.value, overrides(), _EVALS.value,
                                          init_from=_INIT_FROM.value,
                                          experiment=_EXPERIMENT.value, step=_STEP.value)
  except errors.UserError as e:  # one line; anything else is a bug
    print(f'error: {e}', file=sys.stderr)
    return 1
  for key in sorted(outcome.metrics):
    print(f'{key:48s} {outcome.metrics[key]:.4f}')
  for name, reason in outcome.skipped.items():
    print(f'skipped {name}: {reason}')
  print(f'report: {outcome.report} (step {outcome.step})')
  return EXIT_SKIPPED if outcome.skipped else 0


if __name__ == '__main__':
  app.run(main)
