"""End-to-end runs of the translation trainer on the toy corpus with a tiny Transformer:
summary and artefacts, exact resume across an epoch boundary (the PS-KD teacher included), the
teacher in each epoch's checkpoint, compiled shapes == the loader's buckets, and one-line
errors for bad configs before the workdir is touched."""
import glob
import json
import os

import jax
import numpy as np
import pytest

from configs import common
from sdd_jax.workdir import checkpoint
from sdd_jax.workdir import log as train_log
from sdd_jax import tasks
from sdd_jax.config.fields import ConfigError
from sdd_jax.translation import corpus as corpus_lib
from tests import workdirs


def _config(**overrides):
  """PS-KD on label smoothing, tiny model, 200 toy pairs: 3 epochs of a few steps."""
  config = common.translation_smoke(common.translation_recipe('de', 'en'))
  config.methods.ps_kd = {'alpha': 0.8}
  config.num_epochs = 3
  return workdirs.with_overrides(config, overrides)


@pytest.fixture(scope='module')
def straight_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('straight'))
  return workdir, tasks.train_and_evaluate(_config(), workdir)


def _steps_per_epoch(workdir):
  del workdir
  corpus = corpus_lib.create_corpus(_config(), num_devices=len(jax.devices()))
  return corpus.loader


def test_a_run_writes_summary_results_and_hypotheses(straight_run):
  workdir, summary = straight_run
  for key in ('valid/bleu', 'test/bleu', 'test/bleu_tok', 'test/nll', 'train/loss', 'steps',
              'epochs', 'wall_seconds', 'valid/bleu'):
    assert key in summary, key
  assert 0 <= summary['test/bleu'] <= 100 and np.isfinite(summary['test/nll'])
  with open(os.path.join(workdir, 'summary.json')) as f:
    assert json.load(f)['steps'] == summary['steps']
  with open(os.path.join(workdir, 'evals', 'translation', 'results.json')) as f:
    assert 'tok:13a' in json.load(f)['test/signature']
  with open(os.path.join(workdir, 'evals', 'translation', 'test.hyp')) as f:
    assert len(f.read().splitlines()) == _config().data.toy_test
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  assert saved['task'] == 'translation' and set(saved['methods']) == {'label_smoothing', 'ps_kd'}


def test_compiled_shapes_are_the_buckets(straight_run):
  workdir, summary = straight_run
  loader = _steps_per_epoch(workdir)
  assert summary['train/compiled_shapes'] == len(loader.shapes) <= _config().data.num_buckets
  assert summary['steps'] == 3 * loader.steps_per_epoch


def test_each_epochs_checkpoint_holds_its_params_as_the_next_teacher(straight_run):
  workdir, _ = straight_run
  spe = _steps_per_epoch(workdir).steps_per_epoch
  for epoch in (2, 3):  # max_to_keep 3: the checkpoints of epochs 1..3
    state = checkpoint.read_checkpoint(workdir, epoch * spe)
    for p, t in zip(jax.tree.leaves(state['params']),
                    jax.tree.leaves(state['method_states']['ps_kd']['teacher'])):
      assert np.array_equal(p, t)


def test_stop_and_resume_is_bitwise_the_straight_run(straight_run, tmp_path):
  workdir, summary = straight_run
  spe = _steps_per_epoch(workdir).steps_per_epoch
  stop = spe + spe // 2  # inside epoch 2: the resumed run crosses the boundary into epoch 3
  # The stopped session also traces steps 1..2 (the shared loop's profile_steps, a field a
  # resume may change): the trace is written and the training stays bitwise.
  assert tasks.train_and_evaluate(_config(profile_steps=(1, 2)), str(tmp_path),
                                  stop_after_step=stop) == {}
  assert glob.glob(os.path.join(str(tmp_path), 'profile', 'plugins', 'profile', '*',
                                '*.xplane.pb'))
  stopped = checkpoint.read_checkpoint(str(tmp_path), stop)
  epoch_end = checkpoint.read_checkpoint(workdir, spe)
  for a, b in zip(jax.tree.leaves(stopped['method_states']), jax.tree.leaves(epoch_end['params'])):
    assert np.array_equal(a, b)  # mid-epoch 2: the teacher is epoch 1's end
  resumed = tasks.train_and_evaluate(_config(), str(tmp_path))
  final = summary['steps']
  a, b = (checkpoint.read_checkpoint(w, final) for w in (workdir, str(tmp_path)))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.array_equal(x, y)
  for key in ('test/nll', 'valid/bleu', 'test/bleu', 'test/bleu_tok', 'train/loss'):
    assert resumed[key] == summary[key], key


@pytest.mark.parametrize('override,message', [
    ({'methods.ps_kd.alpha': 1.5}, r'config.methods.ps_kd.alpha: must be in \[0, 1\], got 1.5'),
    ({'model.num_heads': 3}, r'config.model.d_model: must be a multiple of model.num_heads'),
    ({'evals.beam_size': 0}, r'config.evals.beam_size: must be an integer >= 1, got 0'),
    ({'data.source': 'tfds'}, r"config.data.source: must be one of \('files', 'toy'\)"),
    ({'task': 'segmentation'}, r"config.task: unknown task 'segmentation'; known tasks: "
                               r'classification, translation'),
    ({'profile_steps': (3, 2)}, r'config.profile_steps: must be \(\) \(off\) or two steps A,B '
                                r'with 1 <= A < B, got \(3, 2\)'),
])
def test_bad_configs_are_one_line_errors(override, message, tmp_path):
  workdir = str(tmp_path / 'run')
  with pytest.raises(ConfigError, match=message):
    tasks.train_and_evaluate(_config(**override), workdir)
  assert not os.path.exists(workdir)


def test_a_host_round_trip_in_the_translation_loop_fails_loudly(tmp_path, monkeypatch):
  """The translation steps run under the shared loop's `jax.transfer_guard('disallow')`: a
  metric taken to the host and back (NumPy, then JAX) at every step is refused."""
  add = train_log.PendingMetrics.add

  def add_with_round_trip(self, step, values):
    values = dict(values, **{'train/loss': jax.numpy.asarray(np.asarray(values['train/loss']))})
    return add(self, step, values)

  monkeypatch.setattr(train_log.PendingMetrics, 'add', add_with_round_trip)
  with pytest.raises(jax.errors.JaxRuntimeError, match='Disallowed host-to-device transfer'):
    tasks.train_and_evaluate(_config(num_epochs=1), str(tmp_path / 'run'))


def test_an_unknown_method_names_the_known_ones():
  config = _config()
  config.methods.cs_kd = {'weight': 1.0}
  with pytest.raises(ConfigError, match=r"config.methods: unknown field\(s\) \['cs_kd'\]; known: "
                                        'label_smoothing, ps_kd'):
    tasks.validate(config)


def test_missing_data_files_are_one_line_before_the_workdir_is_touched(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'train.src').write_text('a\n')
  workdir = str(tmp_path / 'run')
  with pytest.raises(corpus_lib.CorpusError, match=r'train.tgt is missing; put one sentence per '
                                                   'line in'):
    tasks.train_and_evaluate(_config(**{'data.source': 'files', 'data.path': str(data)}), workdir)
  assert not os.path.exists(workdir)


def test_a_finished_workdir_re_run_returns_its_summary_and_changes_no_byte(straight_run):
  workdir, summary = straight_run
  before = workdirs.snapshot(workdir)
  again = tasks.train_and_evaluate(_config(), workdir)
  assert again == json.loads(json.dumps(summary))  # as read back from summary.json
  assert workdirs.snapshot(workdir) == before
