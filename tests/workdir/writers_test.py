"""A resumed run's TensorBoard holds each step once, as `metrics.jsonl` does: read back with
TensorBoard's own loader (`EventAccumulator`, which applies its purges), against the records
of metrics.jsonl and against the values written by hand."""
import collections
import os
import shutil
import time

from tensorboard.backend.event_processing import event_accumulator

from sdd_jax.workdir import writers as metric_writers
from sdd_jax.classification import trainer
from tests import workdirs


def tensorboard_scalars(workdir):
  """{(tag, step): [values]} as TensorBoard shows them (every file, purges applied)."""
  accumulator = event_accumulator.EventAccumulator(
      os.path.join(workdir, 'tensorboard'), size_guidance={event_accumulator.SCALARS: 0})
  accumulator.Reload()
  seen = collections.defaultdict(list)
  for tag in accumulator.Tags()['scalars']:
    for event in accumulator.Scalars(tag):
      seen[(tag, event.step)].append(event.value)
  return dict(seen)


def jsonl_scalars(workdir):
  """{(tag, step): [values]} of metrics.jsonl."""
  seen = collections.defaultdict(list)
  for record in workdirs.read_jsonl(os.path.join(workdir, 'metrics.jsonl')):
    for tag, value in record.items():
      if tag != 'step':
        seen[(tag, record['step'])].append(value)
  return dict(seen)


def assert_tensorboard_is_metrics_jsonl(workdir):
  """Each (tag, step) once in TensorBoard, with metrics.jsonl's value (float32 in the events)."""
  events, records = tensorboard_scalars(workdir), jsonl_scalars(workdir)
  assert sorted(events) == sorted(records)
  for scalars in (events, records):
    repeated = {k: v for k, v in scalars.items() if len(v) != 1}
    assert not repeated, repeated
  for key, [value] in records.items():
    assert abs(events[key][0] - value) <= 1e-6 * max(1.0, abs(value)), (key, events[key], value)


def _write(workdir, start_step, steps, offset):
  writer = metric_writers.create_writer(workdir, 10, True, start_step)
  for step in steps:
    writer.write_scalars(step, {'train/loss': step + offset})
    if step % 2 == 0:
      writer.write_scalars(step, {'test/top1': 10 * step + offset})  # a second write, same step
  writer.close()


def test_a_resumed_writer_purges_the_killed_runs_later_steps(tmp_path):
  workdir = str(tmp_path)
  _write(workdir, 0, range(1, 7), offset=0.5)  # killed after logging step 6
  time.sleep(1.1)  # event files are named by the second they were opened in
  _write(workdir, 4, range(5, 9), offset=0.25)  # resumed from the checkpoint of step 4
  expected = {**{('train/loss', s): [s + 0.5] for s in range(1, 5)},
              **{('test/top1', s): [10 * s + 0.5] for s in (2, 4)},
              **{('train/loss', s): [s + 0.25] for s in range(5, 9)},
              **{('test/top1', s): [10 * s + 0.25] for s in (6, 8)}}
  assert tensorboard_scalars(workdir) == expected
  assert jsonl_scalars(workdir) == expected
  assert len(os.listdir(os.path.join(workdir, 'tensorboard'))) == 2  # no file rewritten


def test_a_run_killed_past_its_checkpoint_resumes_with_each_step_once(tmp_path):
  """A kill after step 6 was logged (and its events flushed) but before its checkpoint:
  simulated by stopping at 6 (checkpoints at 4, the epoch's end, and at 6) and removing the
  checkpoint of step 6, so the run resumes at 4 and logs 5 and 6 again."""
  config = workdirs.tiny_config()
  config.log_every_steps = 1
  workdir = str(tmp_path / 'run')
  trainer.train_and_evaluate(config, workdir, stop_after_step=6)
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '6'))
  assert ('train/loss', 6) in tensorboard_scalars(workdir)
  time.sleep(1.1)
  trainer.train_and_evaluate(config, workdir)
  assert_tensorboard_is_metrics_jsonl(workdir)
  assert sorted(s for tag, s in jsonl_scalars(workdir) if tag == 'train/loss') == \
      list(range(1, 9))
