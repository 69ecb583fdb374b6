"""The one training loop (`sdd_jax/train/loop.py`) serves a task the library does not know: the
toy task of `tests/train/toy_task.py` (1-D regression with an MLP), registered only here
(`tasks.registered`), goes through `train.py`'s path: it claims the workdir, trains,
checkpoints, evaluates, and after a stop the real `train.py` resumes it bitwise. It imports no
task package, so whatever it gets right the loop does without one."""
import ast
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from sdd_jax import evaluation
from sdd_jax import tasks
from sdd_jax.config.fields import ConfigError
from sdd_jax.workdir import checkpoint
from tests import architecture_test
from tests import workdirs
from tests.train import toy_task

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 12  # 3 epochs of 4 steps


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('toy_straight'))
  config = toy_task.get_config()
  with tasks.registered(toy_task.NAME, toy_task.TASK):
    summary = tasks.task_of(config).train_and_evaluate(config, workdir)
  return workdir, summary


def _mse(params, x, y):
  """The MLP's test MSE by hand, in float64 (x, y: [33, 1])."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  hidden = np.tanh(x.astype(np.float64) * p['w1'][0] + p['b1'])
  return float(np.mean((hidden @ p['w2'][:, 0] + p['b2'][0] - y[:, 0]) ** 2))


def test_the_toy_task_is_known_only_inside_its_block():
  config = toy_task.get_config()
  with pytest.raises(ConfigError, match=r"config.task: unknown task 'toy'; known tasks: "
                                        r'classification, translation'):
    tasks.task_of(config)
  with tasks.registered(toy_task.NAME, toy_task.TASK):
    assert tasks.task_of(config) is toy_task.TASK
    with pytest.raises(ValueError, match="task 'toy' is registered twice"):
      with tasks.registered(toy_task.NAME, toy_task.TASK):
        pass
    assert tasks.task_of(config) is toy_task.TASK  # the refused block left the registry as is
  assert tasks.TASKS.names() == ['classification', 'translation']


def test_a_run_claims_trains_checkpoints_and_evaluates(straight):
  workdir, summary = straight
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['task'] == 'toy'
  assert summary['steps'] == STEPS and summary['epochs'] == 3
  assert summary['train/examples_per_sec'] > 0 and np.isfinite(summary['train/loss'])
  assert workdirs.strict_json(os.path.join(workdir, 'summary.json'))['steps'] == STEPS
  for step in (4, 8, 12):  # one checkpoint an epoch
    assert int(checkpoint.read_checkpoint(workdir, step)['step']) == step
  x, y = toy_task.create_test_set()
  final = checkpoint.read_checkpoint(workdir, STEPS)['params']
  assert summary['test/mse'] == pytest.approx(_mse(final, x, y), rel=1e-5)
  assert summary['test/mse'] < 0.5 * float(np.mean(y ** 2))  # trained: beats predicting 0
  logged = [r for r in workdirs.read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
            if 'train/loss' in r]
  assert [r['step'] for r in logged] == [2, 4, 6, 8, 10, 12]  # log_every_steps 2
  with tasks.registered(toy_task.NAME, toy_task.TASK):  # evaluate.py's path
    assert evaluation.evaluate_workdir(workdir)['test/mse'] == pytest.approx(summary['test/mse'],
                                                                             rel=1e-5)


def test_a_stopped_run_resumed_by_train_py_is_bitwise_the_straight_run(straight, tmp_path):
  workdir, summary = straight
  resumed = str(tmp_path / 'run')
  config = toy_task.get_config()
  with tasks.registered(toy_task.NAME, toy_task.TASK):
    assert tasks.task_of(config).train_and_evaluate(config, resumed, stop_after_step=6) == {}
  assert not os.path.exists(os.path.join(resumed, 'summary.json'))
  assert int(checkpoint.read_checkpoint(resumed)['step']) == 6  # mid-epoch 2
  result = subprocess.run(
      [sys.executable, '-m', 'tests.train.toy_task', '--config', 'tests/train/toy_task.py',
       '--workdir', resumed], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.startswith('final: test/mse '), result.stdout
  a, b = (checkpoint.read_checkpoint(w, STEPS) for w in (workdir, resumed))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.array_equal(x, y)
  again = workdirs.strict_json(os.path.join(resumed, 'summary.json'))
  for key in ('test/mse', 'train/loss', 'steps'):
    assert again[key] == summary[key], key


def test_the_toy_task_imports_no_task_package():
  graph = architecture_test.import_graph()
  tree = ast.parse(pathlib.Path(toy_task.__file__).read_text())
  todo = [f'{n.module}.{a.name}' if f'{n.module}.{a.name}' in graph else n.module
          for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
  seen = set()
  while todo:
    module = todo.pop()
    if module in graph and module not in seen:
      seen.add(module)
      # The registry names each task's modules as strings, imported on that task's first use.
      todo.extend(() if module == 'sdd_jax.tasks' else graph[module])
  assert {'sdd_jax.train.loop', 'sdd_jax.tasks'} <= seen
  reached = sorted(m for m in seen if m.split('.')[1:2] and
                   m.split('.')[1] in architecture_test.TASKS)
  assert not reached, reached
