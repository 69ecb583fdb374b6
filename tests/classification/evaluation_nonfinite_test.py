"""evaluate.py's library on a checkpoint whose parameters are all NaN (issue 11): top-1 is 0, not
100, the non-finite count is in the metrics and results.json, and report.md says so in one line.
The workdir is built in-process (the smoke config.json and a checkpoint of the initial state),
without training: one JAX start-up, no subprocess."""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar100_resnet18_ce
from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax import data as data_lib
from sdd_jax import evaluation
from sdd_jax.train import optim
from sdd_jax.train import state as state_lib
from sdd_jax.classification import trainer
from tests import workdirs

WARNING = ('**WARNING: {n} of {n} test examples had non-finite logits (NaN or inf), counted as '
           'wrong**')


def _workdir(path, fill):
  """A workdir with the smoke config and one checkpoint (step 8) of the initial state, every
  parameter replaced by `fill` (None: kept)."""
  config = cifar100_resnet18_ce.get_config('smoke')
  path.mkdir()
  (path / 'config.json').write_text(config.to_json())
  model = trainer.create_model(config)
  tx = optim.make_optimizer(config.optim, lambda step: 0.1)
  sample = jnp.zeros((1, config.data.image_size, config.data.image_size, 3), jnp.float32)
  state = state_lib.create_train_state(model, tx, state_lib.init_key(0), sample)
  if fill is not None:
    state = dataclasses.replace(state, params=jax.tree.map(lambda p: jnp.full_like(p, fill),
                                                           state.params))
  state = dataclasses.replace(state, step=jnp.asarray(8, jnp.int32))
  checkpointer = checkpoint_lib.Checkpointer(str(path), config.max_to_keep)
  checkpointer.save(state)
  checkpointer.close()
  return str(path), len(data_lib.create_source(config.data, config.data.eval_split))


_strict = workdirs.strict_json


def test_an_all_nan_checkpoint_scores_zero_and_the_report_says_so(tmp_path):
  workdir, n = _workdir(tmp_path / 'nan', np.nan)
  outcome = evaluation.evaluate_workdir(workdir, names=['accuracy', 'calibration'])
  m = outcome.metrics
  assert m['test/top1'] == 0.0 and m['test/top5'] == 0.0  # was 100: NaN counted as correct
  assert m['test/nonfinite'] == m['test/count'] == n
  assert m['calibration/nonfinite'] == n and m['calibration/top1'] == 0.0
  assert m['test/nll'] == np.inf
  assert m['calibration/ece'] == pytest.approx(100.0)  # confidence 1, accuracy 0
  record = _strict(os.path.join(workdir, 'evals', 'accuracy', 'results.json'))
  assert record['metrics']['test/nll'] is None and record['metrics']['test/nonfinite'] == n
  with open(outcome.report, encoding='utf-8') as f:
    lines = f.read().splitlines()
  warnings = [line for line in lines if 'WARNING' in line]
  assert warnings == [WARNING.format(n=n) + f'; also: calibration/nonfinite {n} of {n}']
  assert lines.index(warnings[0]) == 2  # right under the title
  assert '| test/nll | n/a |' in lines and f'| test/nonfinite | {n} |' in lines


def test_a_finite_checkpoint_has_no_warning(tmp_path):
  workdir, n = _workdir(tmp_path / 'finite', None)
  outcome = evaluation.evaluate_workdir(workdir, names=['accuracy'])
  assert outcome.metrics['test/nonfinite'] == 0 and outcome.metrics['test/count'] == n
  assert np.isfinite(outcome.metrics['test/nll'])
  with open(outcome.report, encoding='utf-8') as f:
    assert 'WARNING' not in f.read()
