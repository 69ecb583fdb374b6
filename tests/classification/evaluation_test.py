"""evaluate.py / sdd_jax.evaluation on a smoke checkpoint (`train.py ...:smoke` in a subprocess):
every evaluator on synthetic fixtures of the real layouts (a CIFAR-100-C folder, an ImageFolder
of PNGs for OOD), results.json, report.md with a valid PNG, the config merge, and the exit codes
(0 all ran, 3 skipped, 1 user error)."""
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from configs import cifar100_resnet18_ce
from configs import cifar100_resnet18_dml
from configs import common
from sdd_jax import data as data_lib
from sdd_jax import errors
from sdd_jax import evaluation
from sdd_jax.classification import evaluation as classification_evaluation
from sdd_jax import evaluators
from sdd_jax.metrics import corruption as corruption_metrics
from sdd_jax import parallel
from sdd_jax.evaluators import predict as step
from sdd_jax.classification import trainer
from sdd_jax.methods import dml
from sdd_jax.models import build as models_build

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Subprocesses on one CPU device: compiling for 8 simulated ones costs more than it shows.
ONE_DEVICE = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=1',
              'JAX_PLATFORMS': 'cpu'}
N = 20  # CIFAR-100-C fixture rows per severity (the reader accepts any n with rows % 5 == 0)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A finished smoke run (tiny ResNet-18, 32x32 synthetic data, 2 epochs) and its fixtures."""
  root = tmp_path_factory.mktemp('evaluate')
  config = cifar100_resnet18_ce.get_config('smoke')
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'),
                           '--config=configs/cifar100_resnet18_ce.py:smoke',
                           f'--workdir={root / "run"}'], cwd=ROOT, env=ONE_DEVICE,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(root / 'run/summary.json', encoding='utf-8') as f:
    summary = json.load(f)
  rng = np.random.default_rng(0)
  labels = data_lib.create_source(config.data, 'test').labels()[:N]  # canonical = index order
  (root / 'CIFAR-100-C').mkdir()
  np.save(root / 'CIFAR-100-C/labels.npy', np.tile(labels, 5).astype(np.uint8))
  for name in corruption_metrics.ALL_CORRUPTIONS:
    np.save(root / f'CIFAR-100-C/{name}.npy',
            rng.integers(0, 256, (5 * N, 32, 32, 3), dtype=np.uint8))
  (root / 'odin/LSUN/test').mkdir(parents=True)  # the ODIN archive layout: LSUN/test/*.jpg
  for i in range(24):
    size = 32 if i % 4 else 36  # a few larger ones: centre-cropped
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
        root / f'odin/LSUN/test/{i:05d}.png')
  return root, summary


def _workdir(trained, tmp_path):
  root, _ = trained
  workdir = tmp_path / 'run'
  shutil.copytree(root / 'run', workdir)
  return str(workdir)


def _overrides(root, **extra):
  return {'evals.corruption.path': str(root / 'CIFAR-100-C'),
          'evals.odin.folder_root': str(root / 'odin'), 'evals.odin.sets': ('lsun',),
          'evals.odin.holdout': 8, 'evals.fgsm.epsilons': (0.2,), **extra}


def test_every_evaluator_on_a_smoke_checkpoint(trained, tmp_path):
  root, summary = trained
  workdir = _workdir(trained, tmp_path)
  outcome = evaluation.evaluate_workdir(workdir, _overrides(root))
  assert outcome.skipped == {} and outcome.step == 8
  m = outcome.metrics
  # The restored checkpoint is the trainer's final state: the same accuracy and NLL.
  assert m['test/top1'] == pytest.approx(summary['test/top1'])
  assert m['test/nll'] == pytest.approx(summary['test/nll'], rel=1e-5)
  assert m['calibration/ece'] == pytest.approx(summary['test/ece'], rel=1e-4)
  for key in ('fgsm/paper_0.2', 'fgsm/paper_0', 'fgsm/pix_0.2', 'fgsm/norm_0.2',
              'corruption/mca15', 'corruption/mca19', 'corruption/severity_5',
              'odin/lsun/auroc', 'msp/lsun/fpr95'):
    assert 0 <= m[key] <= 100, key
  assert m['odin/lsun/n_in'] == m['odin/lsun/n_out'] == 24 - 8
  assert m['temperature/ece_before'] == pytest.approx(m['calibration/ece'], abs=1e-4)
  assert m['temperature/top1_after'] == pytest.approx(m['test/top1']) and m['temperature/t_star'] > 0

  for name in ('accuracy', 'calibration', 'temperature', 'corruption', 'fgsm', 'odin'):
    with open(os.path.join(workdir, 'evals', name, 'results.json')) as f:
      record = json.load(f)
    assert record['skipped'] is None
    assert record['normalisation']['mean'] == list(common.CIFAR10_MEAN), name
    assert record['normalisation']['std'] == list(common.CIFAR10_STD), name
    assert set(record['metrics']) == {k for k in m if k.startswith(f'{name}/') or (
        name == 'accuracy' and k.startswith('test/')) or (name == 'odin' and
                                                          k.startswith('msp/'))}, name
  with open(os.path.join(workdir, 'evals', 'report.md')) as f:
    report = f.read()
  for text in ('# Evaluation report', '- checkpoint step: 8', 'mean (0.4914, 0.4822, 0.4465)',
               '## accuracy', '## calibration', '## temperature', '## fgsm', '## corruption', '## odin',
               '| fgsm/paper_0.2 | paper | 0.2 |', 'mean (all: mCA-19)', '| lsun | ODIN | 1000 |',
               '![calibration: reliability.png](calibration/reliability.png)',
               '[odin/results.json](odin/results.json)'):
    assert text in report, text
  assert report.index('## accuracy') < report.index('## calibration') < report.index('## odin')
  png = os.path.join(workdir, 'evals', 'calibration', 'reliability.png')
  with Image.open(png) as image:
    image.verify()
    assert image.format == 'PNG'


def test_any_device_count_evaluates(trained, tmp_path, monkeypatch):
  """5 devices divide neither the training batch (16) nor the eval batch (24, padded to 25 rows):
  the metrics are those of the finished run, every example counted once."""
  root, summary = trained
  workdir = _workdir(trained, tmp_path)
  create_mesh = parallel.create_mesh
  monkeypatch.setattr(parallel, 'create_mesh', lambda: create_mesh(jax.devices()[:5]))
  m = evaluation.evaluate_workdir(workdir, names=['accuracy'],
                                  overrides=_overrides(root)).metrics
  assert m['test/count'] == 64
  assert m['test/top1'] == pytest.approx(summary['test/top1'])
  assert m['test/nll'] == pytest.approx(summary['test/nll'], rel=1e-5)
  assert m['test/ece'] == pytest.approx(summary['test/ece'], rel=1e-4)


def _run(*args):
  return subprocess.run([sys.executable, os.path.join(ROOT, 'evaluate.py'), *args], cwd=ROOT,
                        env=ONE_DEVICE, capture_output=True, text=True, timeout=120,
                        check=False)


def test_cli_a_missing_ood_folder_is_skipped_with_exit_code_3(trained, tmp_path):
  workdir = _workdir(trained, tmp_path)
  result = _run(f'--workdir={workdir}', '--evals=odin,calibration',
                f'--config.evals.odin.folder_root={tmp_path / "nowhere"}',
                "--config.evals.odin.sets=('lsun',)")
  assert result.returncode == 3, result.stderr[-2000:]
  assert 'calibration/ece' in result.stdout
  skipped = [line for line in result.stdout.splitlines() if line.startswith('skipped odin')]
  assert len(skipped) == 1 and 'LSUN.tar.gz' in skipped[0] and 'nowhere/LSUN' in skipped[0]
  with open(os.path.join(workdir, 'evals', 'odin', 'results.json')) as f:
    assert 'LSUN.tar.gz' in json.load(f)['skipped']
  with open(os.path.join(workdir, 'evals', 'report.md')) as f:
    assert '**Skipped:** OOD set' in f.read()


def test_cli_user_errors_exit_1_with_one_line(tmp_path):
  result = _run(f'--workdir={tmp_path / "missing"}')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith('error: --workdir')
  result = _run(f'--workdir={tmp_path}', '--config.evals.odin.epsilons=0.1')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "error: --config.evals.odin.epsilons: no such field ('epsilons'); did you mean epsilon? "
      'known here: data_dir, epsilon, every_epochs, folder_root, holdout, max_examples, sets, '
      'temperature']


def _config_only(path):
  """A workdir holding only the config.json a smoke run writes."""
  path.mkdir()
  (path / 'config.json').write_text(cifar100_resnet18_ce.get_config('smoke').to_json())
  return str(path)


def test_user_errors(tmp_path):
  with pytest.raises(evaluation.EvaluationError, match='config.json not found'):
    evaluation.evaluate_workdir(str(tmp_path))
  with pytest.raises(evaluation.EvaluationError, match='no checkpoint in'):
    evaluation.evaluate_workdir(_config_only(tmp_path / 'run'), names=['accuracy'])


def test_merge_evals_defaults_workdir_then_overrides(tmp_path):
  config = evaluation.load_config(_config_only(tmp_path / 'run'))
  assert config.model.kwargs.stage_sizes == (1, 1, 1, 1) and config.data.mean == common.CIFAR10_MEAN
  config.evals.odin = {'epsilon': 0.002, 'temperature': 100.0}
  merged = classification_evaluation.merge_evals(
      config, {'evals.odin.temperature': 10.0, 'evals.fgsm.epsilons': (0.1,),
               'eval_batch_size': 8}, names=['odin', 'accuracy'])
  assert sorted(merged.evals) == ['accuracy', 'odin']
  assert merged.evals.odin.epsilon == 0.002 and merged.evals.odin.temperature == 10.0
  assert merged.evals.odin.holdout == 1000 and merged.evals.accuracy.every_epochs == 1
  assert merged.eval_batch_size == 8
  with pytest.raises(evaluation.EvaluationError, match="unknown evaluator 'ece'"):
    classification_evaluation.merge_evals(config, names=['ece'])
  with pytest.raises(evaluation.EvaluationError, match='only --config.evals'):
    classification_evaluation.merge_evals(config, {'optim.lr': 1.0})


def test_restored_network_is_deterministic_and_per_example(trained):
  """docs/evaluation.md §8.2: eval mode (BatchNorm running stats, no dropout): two calls on a batch
  give identical logits, and an example's logits do not depend on the rest of its batch."""
  root, _ = trained
  config = evaluation.load_config(str(root / 'run'))
  mesh = parallel.create_mesh(jax.devices()[:1])
  variables, step_number = classification_evaluation.restore_variables(config,
                                                                        str(root / 'run'), mesh)
  assert step_number == 8
  logits_fn = step.make_logits_fn(trainer.create_model(config), mesh)
  images = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype(np.float32)
  first = np.asarray(logits_fn(variables, images))
  np.testing.assert_array_equal(first, np.asarray(logits_fn(variables, images)))
  mixed = np.concatenate([images[:3], -images[3:]])
  np.testing.assert_allclose(np.asarray(logits_fn(variables, mixed))[:3], first[:3], rtol=1e-5,
                             atol=1e-6)


def test_an_unreadable_config_json_is_one_line(tmp_path):
  for name, text in (('truncated', '{"model": {"name": "res'), ('not_an_object', '[1, 2]')):
    workdir = tmp_path / name
    workdir.mkdir()
    (workdir / 'config.json').write_text(text)
    with pytest.raises(errors.UserError,
                       match=r'config.json cannot be read \(\w+\); it is written by train.py'):
      evaluation.evaluate_workdir(str(workdir))


@pytest.fixture(scope='module')
def dml_run(tmp_path_factory):
  """A finished tiny DML run (one epoch, in-process) whose corruption section has no data."""
  workdir = str(tmp_path_factory.mktemp('dml') / 'run')
  config = cifar100_resnet18_dml.get_config('smoke')
  config.num_epochs, config.optim.lr_boundaries = 1, ()
  config.optim.lr = 0.001  # 4 steps that keep the networks apart (at 0.1 both predict one class)
  config.evals.corruption = {'every_epochs': 0, 'path': os.path.join(workdir, 'nowhere')}
  config.evals.acc_train = {'type': 'accuracy', 'split': 'train', 'every_epochs': 0}
  return workdir, trainer.train_and_evaluate(config, workdir)


def _softmax(logits):
  z = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return z / z.sum(axis=-1, keepdims=True)


def _network_logits(workdir, split):
  """([logits of network 0, of network 1] float64 [n, classes], labels [n]) of the workdir's
  checkpoint over every example of `split`, each network applied on its own."""
  config = evaluation.load_config(workdir)
  mesh = parallel.create_mesh(jax.devices()[:1])
  variables, _ = classification_evaluation.restore_checkpoint_variables(config, workdir, mesh)
  model = models_build.create_model(config)
  ctx = evaluators.EvalContext(data_config=config.data, batch_size=24, mesh=mesh,
                               source=data_lib.create_source(config.data, split),
                               workdir=workdir)
  logits, labels = {'net0': [], 'net1': []}, []
  for batch in ctx.batches():
    keep = np.asarray(batch['mask'], bool)
    labels.append(np.asarray(batch['labels'])[keep])
    for net in logits:
      z = model.apply(dml.network_variables(variables, net), batch['images'], train=False)
      logits[net].append(np.asarray(z, np.float64)[keep])
  return [np.concatenate(logits[net]) for net in ('net0', 'net1')], np.concatenate(labels)


def test_dml_network_1_and_ensemble_are_evaluated_like_training(dml_run):
  """evaluate.py reports DML's network 1 and ensemble as training does; the ensemble's top-1 is
  the argmax of the two networks' averaged probabilities (NumPy, from each network's logits)."""
  workdir, summary = dml_run
  outcome = evaluation.evaluate_workdir(workdir, names=['accuracy'])
  m = outcome.metrics
  (z0, z1), labels = _network_logits(workdir, 'test')
  mean_probs = (_softmax(z0) + _softmax(z1)) / 2
  ensemble = np.argmax(mean_probs, axis=-1)
  assert (ensemble != np.argmax(z0, -1)).any()  # the ensemble is not network 0 here
  assert m['dml/ensemble/count'] == len(labels) == 64
  assert m['dml/ensemble/top1'] == pytest.approx(100 * np.mean(ensemble == labels))
  assert m['dml/ensemble/nll'] == pytest.approx(
      -np.mean(np.log(mean_probs[np.arange(len(labels)), labels])), rel=1e-5)
  assert m['dml/net1/top1'] == pytest.approx(100 * np.mean(np.argmax(z1, -1) == labels))
  assert m['test/top1'] == pytest.approx(100 * np.mean(np.argmax(z0, -1) == labels))
  for key in ('dml/net1/top1', 'dml/net1/nll', 'dml/ensemble/top1', 'dml/ensemble/ece'):
    assert m[key] == pytest.approx(summary[key], rel=1e-5), key  # as training reported it
  for key in ('accuracy_net1', 'accuracy_ensemble'):
    with open(os.path.join(workdir, 'evals', key, 'results.json'), encoding='utf-8') as f:
      assert json.load(f)['metrics'][f'dml/{key.split("_")[1]}/top1'] == m[
          f'dml/{key.split("_")[1]}/top1']
  assert 'evaluators: accuracy, accuracy_ensemble, accuracy_net1' in open(
      outcome.report, encoding='utf-8').read()


def test_a_skipped_section_is_a_status_in_the_summary_not_a_metric(dml_run):
  workdir, summary = dml_run
  assert 'nowhere' in summary['skipped']['corruption']
  with open(os.path.join(workdir, 'summary.json'), encoding='utf-8') as f:
    assert json.load(f)['skipped'] == summary['skipped']
  logged = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'),
                                               encoding='utf-8')]
  assert any('dml/net1/top1' in record for record in logged)
  assert not [k for record in logged + [summary] for k in record if k.startswith('skipped/')]
  with open(os.path.join(workdir, 'evals', 'report.md'), encoding='utf-8') as f:
    assert '- skipped: corruption' in f.read()


def test_a_section_on_the_train_split_runs_in_training(dml_run):
  """`evals.acc_train = {type: accuracy, split: train}`: train accuracy under its own key, for
  the network and (derived) DML's network 1, counted over the train split."""
  workdir, summary = dml_run
  (z0, z1), labels = _network_logits(workdir, 'train')
  assert summary['acc_train/count'] == len(labels) == 64
  assert summary['acc_train/top1'] == pytest.approx(100 * np.mean(np.argmax(z0, -1) == labels))
  assert summary['acc_train/dml/net1/top1'] == pytest.approx(
      100 * np.mean(np.argmax(z1, -1) == labels))
  assert summary['acc_train/top1'] != summary['test/top1']  # another split than the eval split
  assert summary['acc_train/dml/net1/count'] == summary['acc_train/count']
  assert 0 <= summary['acc_train/top1'] <= 100 and 'acc_train/test/top1' not in summary
  with open(os.path.join(workdir, 'evals', 'acc_train', 'results.json'), encoding='utf-8') as f:
    assert json.load(f)['metrics']['acc_train/top1'] == summary['acc_train/top1']
