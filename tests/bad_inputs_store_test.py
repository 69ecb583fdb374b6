"""The bad-input catalogue on object-store URIs: every surface that takes a path (a train and an
evaluate workdir, `config.model.init_from` and `evaluate.py --init_from`, `export --out`, the
report's folders and `--out`, the sweep's root) × every fault (a scheme we cannot use, a bucket
that does not exist, an endpoint that does not answer) is one line, exit status 1, no
traceback, and nothing written anywhere.

Entry points with a `main(argv)` (export, report, sweep) run in-process and their stderr is
read; train.py and evaluate.py (absl apps, whose flags cannot both live in one process) are
driven through the function their `main` calls, which prints a `UserError` as `error: <it>`
and returns 1; `test_the_train_and_evaluate_entry_points_print_one_line` checks that on the
real scripts once. The unreachable endpoint is a closed loopback port with
SDD_JAX_STORE_WAIT_S=0.5, so each of those cases waits half a second."""
import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid

import aiohttp
import pytest
from etils import epath

from sdd_jax import evaluation
from sdd_jax import export
from sdd_jax import report
from sdd_jax.report import cli as report_cli
from sdd_jax import sweep
from sdd_jax.classification import trainer
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError
from tests import object_store
from tests import workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs', 'cifar100_resnet18_sdd.py')
WAIT_S = 0.5
MISSING_BUCKET = 'sdd-jax-no-such-bucket'


def _config():
  config = workdirs.tiny_config()
  config.num_epochs = 1
  return config


@pytest.fixture(scope='module')
def claimed(tmp_path_factory):
  """A local workdir holding the tiny config's config.json (what export and evaluate read
  first); no checkpoint, so a fault that went unnoticed would end in another error."""
  path = str(tmp_path_factory.mktemp('claimed'))
  with workdir_lib.Claim(path, _config()):
    pass
  return path


# Each surface: (the flag its message names, a function (uri, local) -> what the user sees).
# `local` is a folder of the test's own; the function returns (exit status, stderr).


def _entry(fn):
  """What train.py's and evaluate.py's `main` do with fn's outcome: a UserError is
  `error: <message>` and exit 1; anything else propagates (a traceback)."""
  try:
    fn()
  except UserError as e:
    return 1, f'error: {e}\n'
  return 0, ''


def _main(capsys, main, argv):
  status = main(argv)
  return status, capsys.readouterr().err


SURFACES = {
    'train': ('--workdir ', lambda uri, local, claimed, capsys: _entry(
        lambda: trainer.train_and_evaluate(_config(), uri))),
    'evaluate': ('--workdir ', lambda uri, local, claimed, capsys: _entry(
        lambda: evaluation.evaluate_workdir(uri))),
    'init_from': ('config.model.init_from=', lambda uri, local, claimed, capsys: _entry(
        lambda: trainer.train_and_evaluate(_with_init_from(uri), os.path.join(local, 'run')))),
    'evaluate_init_from': ('--init_from ', lambda uri, local, claimed, capsys: _entry(
        lambda: evaluation.evaluate_workdir(claimed, init_from=uri))),
    'export_out': ('--out ', lambda uri, local, claimed, capsys: _main(
        capsys, export.main, ['--workdir', claimed, '--out', uri])),
    'report_folder': ('folder ', lambda uri, local, claimed, capsys: _main(
        capsys, report.main, [uri, claimed, '--out', os.path.join(local, 'report.md')])),
    'report_out': ('--out ', lambda uri, local, claimed, capsys: _main(
        capsys, report.main, [claimed, '--out', uri])),
    'sweep': ('--workdir_root ', lambda uri, local, claimed, capsys: _main(
        capsys, sweep.main, ['--config', CONFIG + ':smoke', '--workdir_root', uri, '--sweep',
                             'seed=0,1'])),
}


def _with_init_from(uri):
  config = _config()
  config.model.init_from = uri
  return config


def _uri(surface, base):
  """A URI of the kind `surface` takes below `base` (a file for init_from and --out)."""
  name = {'init_from': 'w.safetensors', 'evaluate_init_from': 'w.safetensors',
          'export_out': 'w.safetensors', 'report_out': 'report.md'}.get(surface, 'run')
  return f'{base}/{name}'


# The faults: (id, base URI, expected message after `<flag> <uri>: `).
SCHEMES = [('s3', 's3://bucket/x'), ('az', 'az://container/x'), ('http', 'http://127.0.0.1:9/x'),
           ('gcs', 'gcs://bucket/x')]
SCHEME_CASES = [(surface, scheme, base) for surface in SURFACES for scheme, base in SCHEMES]


def _check_one_line(status, err, flag, uri, message):
  lines = err.strip().splitlines()
  assert status == 1, err
  assert 'Traceback' not in err, err
  assert len(lines) == 1, err
  assert re.fullmatch(rf'error: {re.escape(flag + uri)}: {message}', lines[0]), lines[0]


@pytest.fixture
def here(tmp_path, monkeypatch):
  """The test's own folder, also the working directory: a URI mistaken for a local path
  (`s3:/bucket/...`) would land in it."""
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sweep, 'run_all', lambda *a, **k: pytest.fail('a run was started'))
  return str(tmp_path)


@pytest.mark.parametrize('surface,scheme,base', SCHEME_CASES,
                         ids=[f'{s}-{k}' for s, k, _ in SCHEME_CASES])
def test_a_scheme_we_cannot_use_is_one_line(claimed, here, capsys, surface, scheme, base):
  flag, run = SURFACES[surface]
  uri = _uri(surface, base)
  before = workdirs.snapshot(claimed, folders=True)
  status, err = run(uri, here, claimed, capsys)
  _check_one_line(status, err, flag, uri, rf'{scheme}:// is not supported; give a local path or '
                                          r'a gs://BUCKET/\.\.\. URI \(the only object store .*\)')
  assert os.listdir(here) == []
  assert workdirs.snapshot(claimed, folders=True) == before


@pytest.mark.parametrize('surface', list(SURFACES))
def test_a_bucket_that_does_not_exist_is_one_line(claimed, here, capsys, surface):
  object_store.start()
  flag, run = SURFACES[surface]
  uri = _uri(surface, f'gs://{MISSING_BUCKET}/{uuid.uuid4().hex[:8]}')
  before = workdirs.snapshot(claimed, folders=True)
  status, err = run(uri, here, claimed, capsys)
  _check_one_line(status, err, flag, uri, rf'the bucket gs://{MISSING_BUCKET} does not exist; '
                                          rf'create it \(gcloud storage buckets create '
                                          rf'gs://{MISSING_BUCKET}\) or give another bucket')
  assert os.listdir(here) == []
  assert workdirs.snapshot(claimed, folders=True) == before
  assert not epath.Path(f'gs://{MISSING_BUCKET}').exists()  # not created on the way


@contextlib.contextmanager
def _store_at(url):
  """gcsfs pointed at `url` with a WAIT_S bound; the emulator's settings come back after."""
  object_store.start()
  import gcsfs  # pylint: disable=import-outside-toplevel
  saved = {k: os.environ.get(k) for k in ('STORAGE_EMULATOR_HOST', workdir_path.STORE_WAIT_ENV)}
  os.environ['STORAGE_EMULATOR_HOST'] = url
  os.environ[workdir_path.STORE_WAIT_ENV] = str(WAIT_S)
  gcsfs.GCSFileSystem.clear_instance_cache()  # instances read the endpoint when made
  try:
    yield url
  finally:
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
    gcsfs.GCSFileSystem.clear_instance_cache()


@pytest.fixture
def unreachable():
  """A loopback port where nothing listens (a socket bound there, not listening, keeps the
  port ours)."""
  with socket.socket() as closed:
    closed.bind(('127.0.0.1', 0))
    with _store_at(f'http://127.0.0.1:{closed.getsockname()[1]}') as url:
      yield url


@contextlib.contextmanager
def _answering(status):
  """A loopback HTTP server answering every request with `status` and a GCS error body."""
  class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # pylint: disable=invalid-name
      body = json.dumps({'error': {'code': status, 'message': f'status {status} here'}}).encode()
      self.send_response(status)
      self.send_header('Content-Type', 'application/json')
      self.send_header('Content-Length', str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    with _store_at(f'http://127.0.0.1:{server.server_address[1]}') as url:
      yield url
  finally:
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize('surface', list(SURFACES))
def test_an_unreachable_store_is_one_line_after_the_bounded_wait(claimed, here, capsys, surface,
                                                                 unreachable):
  flag, run = SURFACES[surface]
  uri = _uri(surface, f'gs://{object_store.BUCKET}/{uuid.uuid4().hex[:8]}')
  before = workdirs.snapshot(claimed, folders=True)
  start = time.monotonic()
  status, err = run(uri, here, claimed, capsys)
  elapsed = time.monotonic() - start
  _check_one_line(status, err, flag, uri,
                  rf'the object store at {re.escape(unreachable)} did not answer within '
                  rf'{WAIT_S:g} s \(ClientConnectorError: Cannot connect to host .*\); check the '
                  r'network \(or STORAGE_EMULATOR_HOST\), or wait longer with '
                  r'SDD_JAX_STORE_WAIT_S=<seconds>')
  assert elapsed < WAIT_S + 10  # gcsfs alone retries for ~36 s
  assert os.listdir(here) == []
  assert workdirs.snapshot(claimed, folders=True) == before


def test_the_wait_is_the_configured_bound(unreachable):
  del unreachable
  start = time.monotonic()
  with pytest.raises(workdir_path.StoreError, match=r'did not answer within 0.5 s'):
    workdir_path.check_store(f'gs://{object_store.BUCKET}/run')
  assert WAIT_S <= time.monotonic() - start < WAIT_S + 1.5


def test_a_store_that_refuses_is_one_line_at_once():
  """403 is not worth retrying: one line with gcsfs's cause, without waiting out the bound."""
  with _answering(403):
    start = time.monotonic()
    with pytest.raises(workdir_path.StoreError,
                       match=r'^--out gs://b/x: the object store refused \(OSError: Forbidden: '
                             r'b/b/o\); check the credentials and the bucket\'s permissions$'):
      workdir_path.check_store('gs://b/x', '--out')
    assert time.monotonic() - start < WAIT_S


def test_a_store_that_answers_503_is_asked_again_until_the_bound():
  # A longer bound than the module's 0.5 s: on a loaded machine the first 503 could otherwise
  # arrive after the bound, and the line would name the timeout instead of the 503.
  wait_s = 3.0
  with _answering(503) as url:
    os.environ[workdir_path.STORE_WAIT_ENV] = str(wait_s)  # _answering restores it on exit
    start = time.monotonic()
    with pytest.raises(workdir_path.StoreError,
                       match=rf'^folder gs://b: the object store at {re.escape(url)} did not '
                             rf'answer within {wait_s:g} s \(HttpError: status 503 here, 503\)'):
      workdir_path.check_store('gs://b', 'folder')
    assert time.monotonic() - start >= wait_s


def test_the_report_turns_a_store_failure_while_reading_into_one_line(gcs_root, tmp_path,
                                                                      monkeypatch, capsys):
  """The store failing after the check (here: the connection reset while the runs are read)."""
  def reset(*args, **kwargs):
    raise aiohttp.ClientConnectionError('Connection reset by peer')
  monkeypatch.setattr(report_cli, 'load_runs', reset)
  out = str(tmp_path / 'report.md')
  assert report.main([gcs_root, '--out', out]) == 1
  assert capsys.readouterr().err == (
      f'error: folder {gcs_root}: the object store failed (ClientConnectionError: Connection '
      'reset by peer); check the network, the bucket and its permissions, then run again\n')
  assert not os.path.exists(out)


@pytest.mark.parametrize('value', ['0', '-1', 'soon', 'nan', 'inf'])
def test_a_bad_wait_setting_is_one_line(monkeypatch, value):
  monkeypatch.setenv(workdir_path.STORE_WAIT_ENV, value)
  with pytest.raises(workdir_path.StoreError,
                     match=rf"^SDD_JAX_STORE_WAIT_S='{value}': must be a number of seconds > 0 "
                           r'\(.*unset: 20\)$'):
    workdir_path.store_wait_s()


def test_the_default_wait_is_twenty_seconds(monkeypatch):
  monkeypatch.delenv(workdir_path.STORE_WAIT_ENV, raising=False)
  assert workdir_path.store_wait_s() == 20.0
  monkeypatch.setenv(workdir_path.STORE_WAIT_ENV, '2.5')
  assert workdir_path.store_wait_s() == 2.5


def test_a_store_error_met_while_writing_is_one_line_naming_the_path():
  """gcsfs's own error (here: an upload into a bucket that does not exist, past the checks) is
  a StoreError naming the object and the cause; a local path's error is left as it is."""
  object_store.start()
  target = f'gs://{MISSING_BUCKET}/run/config.json'
  with pytest.raises(workdir_path.StoreError,
                     match=rf'^{re.escape(target)}: the object store failed \(FileNotFoundError: '
                           r'.*\); check the network, the bucket and its permissions, then run '
                           r'again$'):
    workdir_path.write_text(epath.Path(target), '{}')
  with pytest.raises(FileNotFoundError):
    with workdir_path.store_errors('/no/such/folder/x', '--out'):
      open('/no/such/folder/x', 'rb')  # pylint: disable=consider-using-with


S3_LINE = ('error: --workdir s3://bucket/run: s3:// is not supported; give a local path or a '
           'gs://BUCKET/... URI (the only object store sdd_jax can write checkpoints to)')
MISSING_LINE = (f'error: --workdir gs://{MISSING_BUCKET}/run: the bucket gs://{MISSING_BUCKET} '
                f'does not exist; create it (gcloud storage buckets create gs://{MISSING_BUCKET})'
                ' or give another bucket')


@pytest.mark.parametrize('script,args,line', [
    ('train.py', ['--config', CONFIG + ':smoke', '--workdir', 's3://bucket/run'], S3_LINE),
    ('evaluate.py', ['--workdir', f'gs://{MISSING_BUCKET}/run'], MISSING_LINE),
], ids=['train-s3', 'evaluate-missing_bucket'])
def test_the_train_and_evaluate_entry_points_print_one_line(tmp_path, script, args, line):
  """The real scripts (a subprocess each, ~5 s: once per script): stderr is the one line, exit
  status 1, nothing written. gcsfs, imported at the first gs:// path, logs nothing around it
  (with its experimental features on, as outside the tests, its import announces them at INFO
  level)."""
  object_store.start()  # the emulator's settings, inherited by the script
  env = {k: v for k, v in os.environ.items() if k != 'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT'}
  result = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1, result.stderr
  assert [text for text in result.stderr.splitlines() if text.strip()] == [line], result.stderr
  assert os.listdir(tmp_path) == []
