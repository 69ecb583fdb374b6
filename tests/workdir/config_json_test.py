"""`config.json` holds the resolved method fields (each method's defaults filled in), and a
workdir whose config.json holds the form written before (a methods section as the config wrote
it, and no model.bn_group) still resumes; another config is still refused."""
import json
import os

import pytest

from sdd_jax.workdir import checkpoint
from sdd_jax.workdir import records as checkpoint_record
from sdd_jax import methods
from sdd_jax.report import runs
from sdd_jax.classification import trainer
from sdd_jax.workdir import claim as workdir_lib
from tests import workdirs

# Feature dropout's fields, written out from the paper defaults of
# sdd_jax/methods/feature_dropout.py (not read from the code): the config sets `rate` only.
RESOLVED = {'weight': 1.0, 'temperature': 1.0, 'rate': 0.3, 'samples': 1}


def _config(section):
  config = workdirs.tiny_config()
  config.methods.feature_dropout = section
  return config


def _saved(workdir):
  with open(os.path.join(workdir, 'config.json'), encoding='utf-8') as f:
    return json.load(f)


def test_config_json_holds_resolved_fields_and_an_unresolved_one_still_resumes(tmp_path):
  workdir = str(tmp_path / 'run')
  trainer.train_and_evaluate(_config({'rate': 0.3}), workdir, stop_after_step=1)
  assert _saved(workdir)['methods'] == {'feature_dropout': RESOLVED}

  # The same run as an older version wrote it: the section as the config had it, and no
  # model.bn_group (the field came later; absent means 0, the whole batch).
  old = _saved(workdir)
  old['methods'] = {'feature_dropout': {'rate': 0.3}}
  assert old['model'].pop('bn_group') == 0
  path = os.path.join(workdir, 'config.json')
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(old, f, indent=2, sort_keys=True)
  with open(path, 'rb') as f:
    written = f.read()
  # Resumed with every field spelled out: the same config, not "a different config".
  trainer.train_and_evaluate(_config(dict(RESOLVED)), workdir, stop_after_step=2)
  assert int(checkpoint.read_checkpoint(workdir)['step']) == 2
  with open(path, 'rb') as f:
    assert f.read() == written  # written once, never rewritten

  with pytest.raises(trainer.WorkdirError, match=r'holds a run of a different config '
                                                 r'\(methods.feature_dropout.rate: 0.3 -> 0.4\)'):
    trainer.train_and_evaluate(_config({'rate': 0.4}), workdir)
  with pytest.raises(trainer.WorkdirError, match=r'methods.feature_dropout.samples: 1 -> 2'):
    trainer.train_and_evaluate(_config({'rate': 0.3, 'samples': 2}), workdir)
  grouped = _config(dict(RESOLVED))
  grouped.model.bn_group = 4
  with pytest.raises(trainer.WorkdirError, match=r'model.bn_group: 0 -> 4'):
    trainer.train_and_evaluate(grouped, workdir)


def test_the_report_groups_an_unresolved_config_json_with_the_resolved_one():
  resolved = {'seed': 0, 'methods': {'feature_dropout': RESOLVED}}
  older = {'seed': 1, 'methods': {'feature_dropout': {'rate': 0.3}}}
  other = {'seed': 2, 'methods': {'feature_dropout': {'rate': 0.4}}}
  found = runs.group_seeds([runs.Run(workdir=str(i), config=c, summary={}, evals={})
                            for i, c in enumerate((resolved, older, other))])
  assert sorted(sorted(r.config['seed'] for r in g.runs) for g in found) == [[0, 1], [2]]


@pytest.mark.parametrize('resolved_digest', [True, False], ids=['resolved', 'as_written'])
def test_without_config_json_a_checkpoint_of_either_digest_resumes(tmp_path, resolved_digest):
  """A record written before resolution carries the digest of the config as written; one
  written now, of the resolved config. Either matches this config; another config's does not."""
  config = _config({'rate': 0.3})
  step_dir = tmp_path / 'run' / 'checkpoints' / '4'
  step_dir.mkdir(parents=True)
  (step_dir / 'state').write_bytes(b'arrays')
  digest = workdir_lib.config_digest(config, methods.resolve_config if resolved_digest else
                                 lambda c: c)
  checkpoint_record.write(str(step_dir), config_digest=digest, run={})
  workdir_lib.check_config(str(tmp_path / 'run'), config, methods.resolve_config)
  explicit = _config(dict(RESOLVED))  # the same config, every field spelled out
  if resolved_digest:
    workdir_lib.check_config(str(tmp_path / 'run'), explicit, methods.resolve_config)
  with pytest.raises(workdir_lib.WorkdirError, match=r'its checkpoint 4 was trained with a '
                                                 r'different config'):
    workdir_lib.check_config(str(tmp_path / 'run'), _config({'rate': 0.4}), methods.resolve_config)
