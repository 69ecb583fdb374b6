"""The workdir claim: a lock against concurrent runs that a dead process never leaves stale."""
import json
import os
import re
import subprocess
import sys

import pytest

from configs import common
from sdd_jax.workdir import claim as workdir_lib


def _config():
  config = common.recipe()
  common.smoke(config)
  return config


def test_a_second_claim_fails_at_once_and_the_first_release_frees_it(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lib.Claim(workdir, _config()):
    with pytest.raises(workdir_lib.WorkdirError,
                       match=rf'--workdir {workdir} is in use by pid {os.getpid()} on '):
      # flock locks belong to open files: a second open in this process conflicts too.
      with workdir_lib.Claim(workdir, _config()):
        pass
  with workdir_lib.Claim(workdir, _config()):
    pass


def test_a_lock_left_by_a_killed_process_is_recovered(tmp_path):
  workdir = str(tmp_path / 'run')
  os.makedirs(workdir)
  # A process takes the lock and dies by SIGKILL without releasing it.
  script = ('import fcntl, os, signal; f = open(%r, "a+"); fcntl.flock(f, fcntl.LOCK_EX); '
            'f.write("pid %%d" %% os.getpid()); f.flush(); os.kill(os.getpid(), signal.SIGKILL)'
            % os.path.join(workdir, '.lock'))
  assert subprocess.run([sys.executable, '-c', script]).returncode == -9
  assert open(os.path.join(workdir, '.lock')).read().startswith('pid ')  # stale text remains
  with workdir_lib.Claim(workdir, _config()):
    assert open(os.path.join(workdir, '.lock')).read().startswith(f'pid {os.getpid()} ')


def test_a_workdir_that_is_a_file_or_read_only_is_refused(tmp_path):
  path = tmp_path / 'file'
  path.write_text('x')
  with pytest.raises(workdir_lib.WorkdirError, match=r'is a file; give a directory path'):
    with workdir_lib.Claim(str(path), _config()):
      pass
  # Root ignores permission bits, so a chmod-ed folder is read-only only for other users; sysfs
  # refuses new files and folders to root too (EACCES/EPERM, or EROFS where it is mounted ro).
  if not os.path.isdir('/sys/kernel'):
    pytest.skip('no sysfs (not Linux): no folder that root cannot write')
  read_only = tmp_path / 'read_only'
  read_only.mkdir()
  read_only.chmod(0o555)
  targets = ['/sys/kernel', '/sys/kernel/sdd_jax_run']  # an existing folder; a new one inside
  if os.geteuid() != 0:
    targets += [str(read_only), str(read_only / 'run')]
  before = sorted(os.listdir('/sys/kernel')), sorted(os.listdir(read_only))
  for workdir in targets:
    with pytest.raises(workdir_lib.WorkdirError,
                       match=rf'^--workdir {re.escape(workdir)} cannot be written \(.+\); give a writable '
                             'directory$'):
      with workdir_lib.Claim(workdir, _config()):
        pass
  assert (sorted(os.listdir('/sys/kernel')), sorted(os.listdir(read_only))) == before


def test_resumable_fields_may_change_but_training_fields_may_not(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lib.Claim(workdir, _config()):
    pass
  changed = _config()
  changed.log_every_steps = 7
  changed.evals.accuracy.every_epochs = 3
  workdir_lib.check_config(workdir, changed)
  changed.seed = 1
  with pytest.raises(workdir_lib.WorkdirError, match=r'different config \(seed: 0 -> 1\)'):
    workdir_lib.check_config(workdir, changed)


def test_the_config_digest_covers_the_fields_check_config_compares():
  """The digest stored with each checkpoint (a workdir without config.json is checked against
  it): resumable fields change nothing, any other field changes it."""
  base = workdir_lib.config_digest(_config())
  resumable = _config()
  resumable.log_every_steps = 7
  resumable.evals.accuracy.every_epochs = 3
  assert workdir_lib.config_digest(resumable) == base
  for field, value in (('seed', 1), ('optim.lr', 0.05), ('model.kwargs.width', 8)):
    changed = _config()
    *parents, last = field.split('.')
    target = changed
    for part in parents:
      target = target[part]
    target[last] = value
    assert workdir_lib.config_digest(changed) != base, field
  assert workdir_lib.config_digest(json.loads(_config().to_json())) == base
