"""Any checkpoint evaluates on any device count (issue 22): runs trained on 8 simulated
devices (DML's two networks; PS-KD: the plain network and its per-example table as method
state) are evaluated by processes that have 1 and 3 devices, and give the 8-device
evaluation's metrics.

Separate processes, not a sub-mesh of this one: orbax's "Topology mismatch" comes from the
saved shardings naming devices the restoring process does not have, which a mesh over a
subset of this process's 8 devices never shows. One process per device count evaluates all
workdirs (through `evaluation.evaluate_workdir`, what evaluate.py runs), exports them
and reports them.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import safetensors.numpy

from configs import common
from sdd_jax.workdir import checkpoint
from sdd_jax import evaluation
from sdd_jax import export
from sdd_jax.classification import trainer
from tests import workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# No separate CE run: PS-KD's first epoch is CE (one-hot targets) on the plain network, plus
# the table; one CE training more would cost ~30 s of compilation on a cold cache.
METHODS = {'dml': {'dml': common.DML}, 'ps_kd': {'ps_kd': common.PS_KD}}
# evaluate.py's evaluation, export (DML: network 1) and the report, for each workdir named,
# in one process (so one start-up and one compilation cache for all of them).
EVALUATE = """import sys
from sdd_jax import evaluation, export, report
for workdir in sys.argv[1:]:
  evaluation.evaluate_workdir(workdir, names=['accuracy', 'calibration'])
  member = '1' if workdir.endswith('dml') else '0'
  assert export.main(['--workdir', workdir, '--out', workdir + '.safetensors',
                      '--member', member]) == 0
assert report.main([*sys.argv[1:], '--out', sys.argv[1] + '.md']) == 0
"""


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """{method: workdir} of one-epoch tiny runs trained here, on 8 devices; eval batch 20,
  padded to 24 rows on 8 devices and to 21 on 3 (64 examples: the last batch has 4)."""
  assert jax.device_count() == 8, 'conftest.py sets 8 simulated devices'
  root = tmp_path_factory.mktemp('devices')
  out = {}
  for name, methods in METHODS.items():
    config = workdirs.tiny_config()
    config.num_epochs, config.eval_batch_size = 1, 20
    for method, fields in methods.items():
      config.methods[method] = dict(fields)
    out[name] = str(root / name)
    trainer.train_and_evaluate(config, out[name])
  return out


def _metrics(workdir):
  """Every metric of every results.json under `workdir`/evals (DML: accuracy_net1, ...)."""
  return {key: value for path in glob.glob(os.path.join(workdir, 'evals', '*', 'results.json'))
          for key, value in workdirs.strict_json(path)['metrics'].items()}


def _evaluate_in_a_process_with(devices, workdirs_by_method, tmp_path):
  """{method: copy} of the workdirs, evaluated, exported and reported by one process with
  `devices`."""
  copies = {}
  for name, workdir in workdirs_by_method.items():
    copies[name] = str(tmp_path / f'on_{devices}' / name)
    shutil.copytree(workdir, copies[name])
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
         'JAX_PLATFORMS': 'cpu'}
  result = subprocess.run([sys.executable, '-c', EVALUATE, *copies.values()], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return copies


@pytest.mark.parametrize('devices', [1, 3])
def test_runs_trained_on_8_devices_evaluate_on_fewer(runs, devices, tmp_path):
  """The training's own final evaluation (8 devices, the same runner, the state the last
  checkpoint holds) is the reference. Counts and top-k are exact; NLL and ECE to 1e-6
  relative: float32 sums over other per-device batch shapes round differently (~1e-7 seen).
  The export equals this process's (8 devices), tensor by tensor, and the report lists them."""
  copies = _evaluate_in_a_process_with(devices, runs, tmp_path)
  for name, workdir in runs.items():
    reference, metrics = _metrics(workdir), _metrics(copies[name])
    assert set(metrics) == set(reference), name
    if name == 'dml':  # network 1 and the ensemble were restored and evaluated too
      assert {'dml/net1/top1', 'dml/ensemble/nll'} <= set(metrics)
    for key, value in reference.items():
      exact = key.endswith(('count', 'top1', 'top5', 'nonfinite'))
      assert metrics[key] == (value if exact else pytest.approx(value, rel=1e-6)), (name, key)
    assert metrics['test/count'] == 64, name  # every example once, none of the padding
    here = str(tmp_path / f'{name}.safetensors')
    export.export(workdir, here, member=1 if name == 'dml' else 0)
    exported, expected = safetensors.numpy.load_file(copies[name] + '.safetensors'), \
        safetensors.numpy.load_file(here)
    assert exported.keys() == expected.keys() and len(expected) > 10, name
    for key, value in expected.items():
      np.testing.assert_array_equal(exported[key], value, err_msg=f'{name}: {key}')
  with open(copies['dml'] + '.md', encoding='utf-8') as f:
    assert f'{len(runs)} runs in {len(runs)} groups' in f.read()


def _with_config(workdir, tmp_path, change):
  """A copy of `workdir` whose config.json `change(config)` edited."""
  copy = str(tmp_path / 'edited')
  shutil.copytree(workdir, copy)
  path = os.path.join(copy, 'config.json')
  with open(path, encoding='utf-8') as f:
    config = json.load(f)
  change(config)
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(config, f)
  return copy


# The tiny ResNet (width 4, 10 classes) pools 8 x 4 = 32 features into its classifier.
@pytest.mark.parametrize('method, change, message', [
    pytest.param('ps_kd', lambda c: c['data'].update(num_classes=5),
                 r'params/classifier/output/bias: stored \(10,\), this config \(5,\), and 1 more '
                 r'array', id='classes'),
    pytest.param('ps_kd', lambda c: c['model']['kwargs'].update(width=8),
                 r'params/classifier/output/kernel: stored \(32, 10\), this config \(64, 10\), '
                 r'and \d+ more array', id='width'),
    pytest.param('dml', lambda c: c['methods'].pop('dml'),  # two networks, read as one
                 r'params/classifier/output/bias: not stored, this config \(10,\), and \d+ more '
                 r'array', id='layout'),
])
def test_a_checkpoint_of_another_model_names_what_differs(runs, tmp_path, method, change,
                                                         message):
  """Evaluation refuses a checkpoint whose arrays are not the config's model's, before any is
  read, and names the first difference (never topology); the workdir keeps every byte."""
  workdir = _with_config(runs[method], tmp_path, change)
  before = workdirs.snapshot(workdir)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r'the checkpoints in .* hold another model than this config\'s \(step '
                           rf'4: {message}\(s\) differ\): use a new --workdir, or the config they '
                           r'were trained with$'):
    evaluation.evaluate_workdir(workdir, names=['accuracy'])
  assert workdirs.snapshot(workdir) == before
