"""The training loop runs under `jax.transfer_guard('disallow')`: a smoke run with every evaluator
inside the loop (accuracy, calibration, temperature, FGSM, ODIN, corruption, at an eval batch that the 8
devices do not divide) finishes, so every transfer on the loop's path is explicit; a host round
trip slipped into the loop fails loudly.

On CPU, JAX reads device arrays into NumPy without a copy and does not guard that direction, so
only the host-to-device half of a round trip (NumPy or Python numbers fed back to JAX) is caught
here; on accelerators the device-to-host half (`np.asarray`, `float(x)`) is a real copy, which
the guard is meant to refuse too (not run here).
"""
import numpy as np
import jax
import jax.numpy as jnp
import pytest
from PIL import Image

from configs import cifar100_resnet18_ce
from sdd_jax.workdir import log as train_log
from sdd_jax.classification import trainer


def _config(root):
  config = cifar100_resnet18_ce.get_config('smoke')
  config.eval_batch_size = 20  # padded to 24 rows on 8 devices
  rng = np.random.default_rng(0)
  (root / 'CIFAR-100-C').mkdir()
  np.save(root / 'CIFAR-100-C/labels.npy', np.zeros(5 * 8, np.uint8))
  np.save(root / 'CIFAR-100-C/gaussian_noise.npy',
          rng.integers(0, 256, (5 * 8, 32, 32, 3), dtype=np.uint8))
  (root / 'odin/LSUN/test').mkdir(parents=True)
  for i in range(12):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        root / f'odin/LSUN/test/{i:05d}.png')
  # every_epochs 0: after the last step, still inside the loop (and its guard).
  config.evals = {
      'accuracy': {'every_epochs': 1}, 'calibration': {'every_epochs': 0},
      'temperature': {'every_epochs': 0},
      'fgsm': {'every_epochs': 0, 'epsilons': (0.1,), 'norm_epsilons': (),
               'paper_epsilons': (0.2,)},
      'odin': {'every_epochs': 0, 'sets': ('lsun',), 'folder_root': str(root / 'odin'),
               'holdout': 4, 'max_examples': 12},
      'corruption': {'every_epochs': 0, 'path': str(root / 'CIFAR-100-C'),
                     'corruptions': ('gaussian_noise',), 'check_labels': False}}
  return config


def test_every_evaluator_runs_inside_the_guarded_loop(tmp_path):
  summary = trainer.train_and_evaluate(_config(tmp_path), str(tmp_path / 'run'))
  assert summary['test/count'] == summary['fgsm/count'] == 64  # every eval example, once
  assert 0 <= summary['odin/lsun/auroc'] <= 100 and 'corruption/mca19' in summary
  assert 'calibration/ece' in summary and 'temperature/t_star' in summary and not any(k.startswith('skipped') for k in summary)


def test_a_host_round_trip_in_the_loop_fails_loudly(tmp_path, monkeypatch):
  """A metric that takes the loss to the host and back (NumPy, then JAX) at every step."""
  add = train_log.PendingMetrics.add

  def add_with_round_trip(self, step, values):
    values = dict(values, **{'train/loss': jnp.asarray(np.asarray(values['train/loss']))})
    return add(self, step, values)

  monkeypatch.setattr(train_log.PendingMetrics, 'add', add_with_round_trip)
  config = cifar100_resnet18_ce.get_config('smoke')
  with pytest.raises(jax.errors.JaxRuntimeError, match='Disallowed host-to-device transfer'):
    trainer.train_and_evaluate(config, str(tmp_path / 'run'))
