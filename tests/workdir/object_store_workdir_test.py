"""The workdir core on a gs:// workdir (the emulator of tests/object_store.py): claim and
config.json, checkpoints with their records, metrics.jsonl, summary.json and evals/ all land in
the bucket and read back as on a local disk; s3:// is refused in one line.
A training run to gs:// stopped after step 3 and resumed ends bitwise equal to the same run on
a local workdir."""
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath

from sdd_jax.workdir import checkpoint
from sdd_jax.workdir import writers as metric_writers
from sdd_jax.workdir import log as train_log
from sdd_jax.classification import trainer
from sdd_jax.workdir import claim as workdir
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.evaluators import report
from sdd_jax.evaluators import results
from tests import workdirs


def test_claim_writes_config_json_and_refuses_another_config(gcs_root):
  remote = f'{gcs_root}/run'
  config = workdirs.tiny_config()
  with workdir.Claim(remote, config):
    pass
  saved = json.loads((epath.Path(remote) / 'config.json').read_text())
  assert saved['batch_size'] == config.batch_size == 16
  other = workdirs.tiny_config()
  other.batch_size = 32
  with pytest.raises(workdir.WorkdirError, match=r'batch_size: 16 -> 32'):
    workdir.check_config(remote, other)
  workdir.check_config(remote, workdirs.tiny_config())  # the same config resumes


def test_checkpoints_and_their_records_round_trip(gcs_root):
  remote = f'{gcs_root}/run'
  state = {'step': jnp.asarray(5), 'w': jnp.arange(12.0).reshape(3, 4), 'b': jnp.ones(3)}
  saver = checkpoint.Checkpointer(remote, max_to_keep=2, config_digest='abc')
  saver.save(_State(**state), run={'x': 1})
  saver.close()
  step_dir = epath.Path(remote) / 'checkpoints' / '5'
  record = json.loads((step_dir / 'sdd_jax_record.json').read_text())
  assert record['config_digest'] == 'abc' and record['run'] == {'x': 1}
  assert record['files'] and all(len(h) == 64 for h in record['files'].values())
  restored = checkpoint.read_checkpoint(remote)
  np.testing.assert_array_equal(restored['w'], np.arange(12.0).reshape(3, 4))
  np.testing.assert_array_equal(restored['b'], np.ones(3))
  # A flipped byte in a stored file makes the checkpoint unreadable, as on a local disk.
  name = sorted(record['files'])[0]
  data = bytearray((step_dir / name).read_bytes())
  data[-1] ^= 1
  (step_dir / name).write_bytes(bytes(data))
  with pytest.raises(checkpoint.CheckpointError, match='differs from the sha256'):
    checkpoint.read_checkpoint(remote)


@flax.struct.dataclass
class _State:
  """A pytree with the `step` field the Checkpointer reads."""
  step: jnp.ndarray
  w: jnp.ndarray
  b: jnp.ndarray


def test_metrics_summary_and_evals_reach_the_bucket(gcs_root):
  remote = f'{gcs_root}/run'
  writer = metric_writers.JsonlWriter(f'{remote}/metrics.jsonl')
  for step in (2, 4, 6):
    writer.write_scalars(step, {'train/loss': step / 10})
  writer.close()
  # A resume at step 4 drops the later record, as on a local disk.
  metric_writers.JsonlWriter(f'{remote}/metrics.jsonl', resume_step=4).close()
  assert workdirs.read_jsonl(f'{remote}/metrics.jsonl') == [
      {'step': 2, 'train/loss': 0.2}, {'step': 4, 'train/loss': 0.4}]
  train_log.write_summary(f'{remote}/summary.json', {'steps': 8, 'train/loss': float('nan')})
  assert json.loads((epath.Path(remote) / 'summary.json').read_text()) == {
      'steps': 8, 'train/loss': None}
  results.write_results(remote, 'calibration', data_config=workdirs.tiny_config().data,
                        metrics={'ece': 0.25})
  assert results.read_results(remote, 'calibration')['metrics'] == {'ece': 0.25}
  path = report.write_report(remote)
  text = epath.Path(path).read_text()
  assert f'`{remote}`' in text and 'calibration' in text


def test_an_s3_workdir_is_refused_in_one_line():
  with pytest.raises(workdir_path.UnsupportedScheme, match=r'^--workdir s3://bucket/run: s3:// is '
                                                          r'not supported; give a local path'):
    workdir.check_config('s3://bucket/run', workdirs.tiny_config())


@pytest.fixture(scope='module')
def local_run(tmp_path_factory):
  local = str(tmp_path_factory.mktemp('local'))
  return local, trainer.train_and_evaluate(workdirs.tiny_config(), local)


def test_stop_and_resume_on_gs_equals_the_local_run_bitwise(local_run, gcs_root, tmp_path,
                                                            monkeypatch):
  local, local_summary = local_run
  monkeypatch.chdir(tmp_path)  # a write that misses the URI lands here, not in the repository
  remote = f'{gcs_root}/run'
  assert trainer.train_and_evaluate(workdirs.tiny_config(), remote, stop_after_step=3) == {}
  root = epath.Path(remote)
  assert sorted(p.name for p in (root / 'checkpoints').iterdir()) == ['3']
  summary = trainer.train_and_evaluate(workdirs.tiny_config(), remote)
  assert not os.path.exists('gs:')  # nothing went to a local folder named after the URI
  a, b = checkpoint.read_checkpoint(local), checkpoint.read_checkpoint(remote)
  assert int(a['step']) == int(b['step']) == 8
  jax.tree.map(np.testing.assert_array_equal, a['params'], b['params'])
  jax.tree.map(np.testing.assert_array_equal, a['opt_state'], b['opt_state'])
  assert summary['test/top1'] == local_summary['test/top1']
  assert summary['train/loss'] == local_summary['train/loss']
  assert json.loads((root / 'summary.json').read_text())['steps'] == 8
  with open(os.path.join(local, 'metrics.jsonl'), encoding='utf-8') as f:
    local_losses = [(r['step'], r['train/loss']) for r in map(json.loads, f) if 'train/loss' in r]
  remote_records = workdirs.read_jsonl(f'{remote}/metrics.jsonl')
  assert [(r['step'], r['train/loss']) for r in remote_records if 'train/loss' in r] == \
      local_losses
  # TensorBoard: staged locally, uploaded whole; the two runs' event files hold the losses.
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
  events = sorted(p.name for p in (root / 'tensorboard').iterdir())
  assert len(events) == 2 and all(name.startswith('events.out.tfevents.') for name in events)
  copy = tmp_path / 'tensorboard'  # read locally: with TensorFlow installed, TensorBoard reads
  copy.mkdir()  # gs:// through tf.io.gfile, which does not know the emulator
  for name in events:
    (copy / name).write_bytes((root / 'tensorboard' / name).read_bytes())
  accumulator = event_accumulator.EventAccumulator(str(copy))
  accumulator.Reload()
  logged = {e.step: e.value for e in accumulator.Scalars('train/loss')}
  assert sorted(logged.items()) == [(step, np.float32(loss)) for step, loss in local_losses]
  assert not (root / 'lease.json').exists()  # released at the end of the run
