"""Where metrics go: TensorBoard event files, `metrics.jsonl`, and a console progress line.

Writers share clu's `write_scalars(step, scalars)` / `flush()` / `close()` shape; clu itself
is not used because its `metric_writers` package imports TensorFlow. The TensorBoard writer uses
the `tensorboard` package's own event-file writer. Only process 0 writes files.

TensorBoard events of a gs:// workdir: tensorboard's fsspec backend appends each flush, and
gcsfs turns an append into an overwrite, so the events are written to a local staging folder
and each event file is uploaded whole to `<workdir>/tensorboard/` every UPLOAD_EVERY_S seconds
and at the end (`UploadingTensorBoardWriter`); a killed run loses at most the last
UPLOAD_EVERY_S seconds of events there (`metrics.jsonl` has them).

An object (gs://) cannot be appended to: on an object store `metrics.jsonl` is held in memory
and the whole object is rewritten at each write (a record per `log_every_steps`, so a few MB at
most over a long run).
"""
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Mapping, Optional

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer import event_file_writer

from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path


class ScalarWriter:
  """Base writer: scalars only (sdd_jax logs no images or histograms)."""

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    raise NotImplementedError

  def flush(self) -> None:
    pass

  def close(self) -> None:
    self.flush()


class MultiWriter(ScalarWriter):
  """Forwards every call to each of `writers`."""

  def __init__(self, writers):
    self._writers = list(writers)

  def write_scalars(self, step, scalars):
    for writer in self._writers:
      writer.write_scalars(step, scalars)

  def flush(self):
    for writer in self._writers:
      writer.flush()

  def close(self):
    for writer in self._writers:
      writer.close()


class TensorBoardWriter(ScalarWriter):
  """Scalars as TensorBoard events in `logdir`.

  `resume_step`: the step the run (re)starts from. Its event file begins with a
  `SessionLog.START` event at `resume_step + 1`, on which TensorBoard's loader drops every event
  of the earlier files at that step or later (its purge of orphaned data, for event files of
  version 2): the steps a killed run logged past its checkpoint, about to be logged again, so
  TensorBoard holds each step once, as `metrics.jsonl` does.
  """

  def __init__(self, logdir: str, resume_step: Optional[int] = None):
    self._writer = event_file_writer.EventFileWriter(logdir)
    if resume_step is not None:
      self._writer.add_event(event_pb2.Event(
          wall_time=time.time(), step=int(resume_step) + 1,
          session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

  def write_scalars(self, step, scalars):
    summary = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        for tag, value in scalars.items()])
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                           summary=summary))

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


UPLOAD_EVERY_S = 30.0


class UploadingTensorBoardWriter(TensorBoardWriter):
  """TensorBoard events for an object-store `logdir`: written to a local staging folder, each
  event file uploaded whole every `upload_every_s` seconds and at `close`."""

  def __init__(self, logdir: str, resume_step: Optional[int] = None,
               upload_every_s: float = UPLOAD_EVERY_S):
    self._staging = tempfile.mkdtemp(prefix='sdd_jax_tensorboard_')
    super().__init__(self._staging, resume_step)
    self._target = workdir_path.path(logdir)
    self._every = upload_every_s
    self._last = time.monotonic()

  def write_scalars(self, step, scalars):
    super().write_scalars(step, scalars)
    if time.monotonic() - self._last >= self._every:
      self.flush()

  def _upload(self):
    self._target.mkdir(parents=True, exist_ok=True)
    for name in sorted(os.listdir(self._staging)):
      with open(os.path.join(self._staging, name), 'rb') as f:
        workdir_path.write_bytes(self._target / name, f.read())
    self._last = time.monotonic()

  def flush(self):
    super().flush()
    self._upload()

  def close(self):
    super().close()
    self._upload()
    shutil.rmtree(self._staging, ignore_errors=True)


class JsonlWriter(ScalarWriter):
  """One strict JSON object per write: {"step": s, "<section>/<name>": value, ...}, a NaN or
  ±inf value as null (`jsonio`).

  `resume_step`: the step the run resumes from. The records of later steps (written before a
  kill, and about to be written again) and any line a kill cut short are dropped first, so
  the file reads as the uninterrupted run's.
  """

  def __init__(self, path: str, resume_step: Optional[int] = None):
    self._path = workdir_path.path(path)
    if resume_step is not None and self._path.exists():
      _keep_through(self._path, resume_step)
    if workdir_path.is_local(path):
      self._file, self._text = open(path, 'a', encoding='utf-8'), None
    else:  # an object: rewritten whole
      self._file = None
      self._text = self._path.read_text() if self._path.exists() else ''

  def write_scalars(self, step, scalars):
    record = {'step': int(step), **{k: float(v) for k, v in scalars.items()}}
    if self._file is None:
      self._text += jsonio.dumps(record) + '\n'
      self._path.write_text(self._text)
      return
    self._file.write(jsonio.dumps(record) + '\n')
    self._file.flush()  # readable while the run goes on (and complete up to a SIGKILL)

  def flush(self):
    if self._file is not None:
      self._file.flush()

  def close(self):
    if self._file is not None:
      self._file.close()


def _keep_through(path, step: int) -> None:
  """Rewrites the JSON-lines file `path` without the records after `step` and the lines that
  are not records (temporary file, then rename; untouched when nothing is dropped)."""
  lines = path.read_bytes().split(b'\n')
  kept = []
  for line in lines:
    try:
      record = json.loads(line)
    except ValueError:
      record = None
    if isinstance(record, dict) and isinstance(record.get('step'), int) and \
        record['step'] <= step:
      kept.append(line)
  text = b''.join(line + b'\n' for line in kept)
  if text != b''.join(line + b'\n' for line in lines if line):
    workdir_path.write_bytes(path, text)


class ProgressWriter(ScalarWriter):
  """A console progress bar with rate and ETA, redrawn at every write."""

  def __init__(self, total_steps: int, stream=None, width: int = 24):
    self._total = max(total_steps, 1)
    self._stream = stream or sys.stderr
    self._width = width
    self._start: Optional[tuple] = None

  def write_scalars(self, step, scalars):
    now = time.time()
    if self._start is None:
      self._start = (now, step)
    start_time, start_step = self._start
    rate = (step - start_step) / max(now - start_time, 1e-9)
    eta = (self._total - step) / rate if rate > 0 else float('nan')
    done = int(self._width * step / self._total)
    shown = ' '.join(f'{k.split("/")[-1]} {v:.4g}' for k, v in scalars.items()
                     if k in ('train/loss', 'train/top1', 'train/confidence', 'test/top1',
                              'train/images_per_sec', 'train/collapse_warning'))
    self._stream.write(f'[{"#" * done}{"." * (self._width - done)}] step {step}/{self._total} '
                       f'{shown} ETA {_duration(eta)}\n')
    self._stream.flush()


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return '?'
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}h{minutes:02d}m' if hours else f'{minutes}m{seconds:02d}s'


def create_writer(workdir: str, total_steps: int, is_main: bool,
                  start_step: int = 0) -> ScalarWriter:
  """TensorBoard + metrics.jsonl + progress on process 0; nothing on the others. A run that
  resumes at `start_step` drops metrics.jsonl's records of later steps, and starts its
  TensorBoard events with a purge of them (`TensorBoardWriter`)."""
  if not is_main:
    return MultiWriter([])
  tensorboard = (TensorBoardWriter if workdir_path.is_local(workdir) else
                 UploadingTensorBoardWriter)
  return MultiWriter([
      tensorboard(os.fspath(workdir_path.path(workdir) / 'tensorboard'), start_step),
      JsonlWriter(os.fspath(workdir_path.path(workdir) / 'metrics.jsonl'),
                  resume_step=start_step),
      ProgressWriter(total_steps),
  ])


def scalars_of(metrics: Mapping[str, Any]) -> dict:
  return {k: float(np.asarray(v)) for k, v in metrics.items()}
