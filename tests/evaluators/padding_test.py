"""Any device count evaluates: an eval batch that does not divide over the 8 devices is padded
with masked rows (`parallel.eval_batch_rows`), and accuracy, NLL, ECE, the non-finite counts
and FGSM equal a NumPy computation on the real examples alone. The model is run through the
real jitted eval functions of `evaluators/predict.py` on an 8-device mesh; it gives NaN logits (and NaN input
gradients) for an all-zero image, i.e. for every padded row, so a padded row that were scored
or counted anywhere would show."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from sdd_jax import parallel
from sdd_jax.evaluators import predict as step_lib
from sdd_jax.data import sources
from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import calibration
from sdd_jax.evaluators import fgsm
from sdd_jax.evaluators import odin

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
N, BATCH, CLASSES = 45, 20, 10  # batches of 20, 20 and 5 examples, each padded to 24 rows


class PoolLinear(nn.Module):
  """logits = mean over pixels @ kernel + bias; NaN for an all-zero image (the padding)."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    logits = nn.Dense(CLASSES)(jnp.mean(x, axis=(1, 2)))
    return logits + 0.0 * jnp.log(jnp.sum(jnp.abs(x), axis=(1, 2, 3)))[:, None]


def _ctx(workdir, source):
  data_config = common.data_config('cifar100', source='synthetic', augment='none', mean=MEAN,
                                   std=STD, num_classes=CLASSES, prefetch=0)
  return base.EvalContext(data_config=data_config, batch_size=BATCH,
                          mesh=parallel.create_mesh(), source=source, workdir=str(workdir))


@pytest.fixture(scope='module')
def setup():
  rng = np.random.default_rng(7)
  images = rng.integers(1, 256, (N, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, CLASSES, N)
  kernel, bias = rng.normal(size=(3, CLASSES)) * 3, rng.normal(size=CLASSES)
  mesh = parallel.create_mesh()
  assert mesh.devices.size == 8 and BATCH % 8
  model = PoolLinear()
  variables = parallel.replicate({'params': {'Dense_0': {
      'kernel': jnp.asarray(kernel, jnp.float32), 'bias': jnp.asarray(bias, jnp.float32)}}}, mesh)
  logits_fn = step_lib.make_logits_fn(model, mesh)
  input_grad_fn = step_lib.make_input_grad_fn(model, mesh)
  predict = base.Predictors(logits_fn=lambda x: logits_fn(variables, x),
                            input_grad_fn=lambda x, y, t: input_grad_fn(variables, x, y, t))
  x = (images / 255.0 - np.asarray(MEAN)) / np.asarray(STD)  # float64, [N, H, W, C]
  return dict(images=images, labels=labels, kernel=kernel, bias=bias, predict=predict, x=x,
              source=sources.ArraySource(images, labels, CLASSES, 'test'))


def _logits(x, kernel, bias):
  return x.mean(axis=(1, 2)) @ kernel + bias


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_eval_batch_rows_hand_worked():
  assert parallel.eval_batch_rows(20, 8) == 24
  assert parallel.eval_batch_rows(24, 8) == 24
  assert parallel.eval_batch_rows(1000, 16, 4) == 1008
  assert parallel.eval_batch_rows(1000, 2048, 256) == 2048
  assert parallel.eval_batch_rows(5, 1) == 5
  assert parallel.eval_batch_rows(6, 4, 8) == 8  # lcm(4, 8)


def test_batches_are_padded_to_the_devices(setup, tmp_path):
  ctx = _ctx(tmp_path, setup['source'])
  batches = list(ctx.batches())
  assert [b['images'].shape[0] for b in batches] == [24, 24, 24]
  masks = [np.asarray(jax.device_get(b['mask'])) for b in batches]
  assert [int(m.sum()) for m in masks] == [20, 20, 5]
  index = np.concatenate([np.asarray(jax.device_get(b['index']))[m]
                          for b, m in zip(batches, masks)])
  np.testing.assert_array_equal(index, np.arange(N))


def test_accuracy_nll_ece_equal_numpy_on_the_real_rows(setup, tmp_path):
  ctx = _ctx(tmp_path, setup['source'])
  out = accuracy.Accuracy()(ctx, setup['predict'])
  z = _logits(setup['x'], setup['kernel'], setup['bias'])
  labels = setup['labels']
  p = _softmax(z)
  confidence, predicted = p.max(-1), p.argmax(-1)
  correct = predicted == labels
  top5 = np.array([label in np.argsort(-row)[:5] for row, label in zip(z, labels)])
  nll = -np.log(p[np.arange(N), labels])
  bins = np.ceil(confidence * 10).astype(int) - 1  # right-closed ((m-1)/10, m/10]
  ece = sum(abs(correct[bins == m].mean() - confidence[bins == m].mean()) * np.sum(bins == m)
            for m in range(10) if np.any(bins == m)) / N
  assert out['test/count'] == N and out['test/nonfinite'] == 0
  assert out['test/top1'] == pytest.approx(100 * correct.mean(), abs=1e-9)
  assert out['test/top5'] == pytest.approx(100 * top5.mean(), abs=1e-9)
  assert out['test/nll'] == pytest.approx(nll.mean(), rel=1e-5)
  assert out['test/ece'] == pytest.approx(100 * ece, abs=1e-4)


def test_calibration_scores_equal_numpy_on_the_real_rows(setup, tmp_path):
  """Brier, class-wise and equal-mass ECE and AURC: a padded (NaN) row that were scored would
  count as non-finite and move every one of them."""
  out = calibration.Calibration()(_ctx(tmp_path, setup['source']), setup['predict'])
  p = _softmax(_logits(setup['x'], setup['kernel'], setup['bias']))
  labels, targets = setup['labels'], np.eye(CLASSES)[setup['labels']]
  confidence, correct = p.max(-1), (p.argmax(-1) == labels).astype(float)
  order = np.argsort(-confidence)
  wrong = np.cumsum(1 - correct[order])
  n_wrong = int(wrong[-1])
  optimal = sum(j / (N - n_wrong + j) for j in range(1, n_wrong + 1)) / N
  rank = np.argsort(confidence)  # equal-mass: 45 = 10 bins of 5 and 5 of 4 (+1 remainder each)
  sizes = [5] * 5 + [4] * 5
  edges = np.cumsum([0] + sizes)
  adaptive = sum(abs(correct[rank[a:b]].mean() - confidence[rank[a:b]].mean()) * (b - a)
                 for a, b in zip(edges[:-1], edges[1:])) / N
  bins = np.ceil(p * 10).astype(int) - 1  # random logits: no p_k on an edge
  classwise = np.mean([sum(abs(targets[bins[:, k] == m, k].sum() - p[bins[:, k] == m, k].sum())
                           for m in range(10)) / N for k in range(CLASSES)])
  assert out['calibration/count'] == N and out['calibration/nonfinite'] == 0
  assert out['calibration/brier'] == pytest.approx(np.mean(np.sum((p - targets) ** 2, -1)),
                                                   rel=1e-5)
  assert out['calibration/aurc'] == pytest.approx(1000 * np.mean(wrong / np.arange(1, N + 1)),
                                                  abs=1e-6)
  assert out['calibration/eaurc'] == pytest.approx(
      1000 * (np.mean(wrong / np.arange(1, N + 1)) - optimal), abs=1e-6)
  assert out['calibration/ece_adaptive'] == pytest.approx(100 * adaptive, abs=1e-4)
  assert out['calibration/ece_classwise'] == pytest.approx(100 * classwise, abs=1e-4)


def test_fgsm_equals_numpy_on_the_real_rows(setup, tmp_path):
  ctx = _ctx(tmp_path, setup['source'])
  section = {'epsilons': (0.1,), 'norm_epsilons': (), 'paper_epsilons': (0.2,)}
  out = fgsm.Fgsm(section)(ctx, setup['predict'])
  x, labels, kernel, bias = setup['x'], setup['labels'], setup['kernel'], setup['bias']
  mean, std = np.asarray(MEAN), np.asarray(STD)
  z = _logits(x, kernel, bias)
  expected = {'fgsm/clean': 100 * np.mean(z.argmax(-1) == labels)}
  for key, targets, step, lower, upper in (
      ('fgsm/pix_0.1', labels, 0.1 / std, -mean / std, (1 - mean) / std),  # true labels
      ('fgsm/paper_0.2', z.argmax(-1), np.full(3, 0.2), np.zeros(3), np.ones(3))):  # predicted
    grad = (_softmax(z) - np.eye(CLASSES)[targets]) @ kernel.T  # d CE / d mean pixel, [N, C]
    adversarial = np.clip(x + step * np.sign(grad)[:, None, None, :], lower, upper)
    expected[key] = 100 * np.mean(_logits(adversarial, kernel, bias).argmax(-1) == labels)
  assert out['fgsm/count'] == N and out['fgsm/nonfinite'] == 0
  for key, value in expected.items():
    assert out[key] == pytest.approx(value, abs=1e-9), key
  assert out['fgsm/pix_0.1'] < out['fgsm/clean']  # the attack bites (the test can fail)


def test_odin_and_msp_scores_equal_numpy_on_the_real_rows(setup, tmp_path):
  ctx = _ctx(tmp_path, setup['source'])
  temperature, epsilon = 1000.0, 0.0014
  scores = odin.source_scores(ctx, setup['predict'], setup['source'], temperature, epsilon)
  x, kernel, bias = setup['x'], setup['kernel'], setup['bias']
  z = _logits(x, kernel, bias)
  # d/dx of CE(z / T, argmax z), per channel (the same for every pixel); s(g) = +1 where g >= 0.
  grad = (_softmax(z / temperature) - np.eye(CLASSES)[z.argmax(-1)]) @ kernel.T / temperature
  perturbed = x - (epsilon / np.asarray(STD)) * np.where(grad >= 0, 1.0, -1.0)[:, None, None, :]
  expected = {'msp': np.log(_softmax(z).max(-1)),
              'odin': np.log(_softmax(_logits(perturbed, kernel, bias) / temperature).max(-1))}
  for key, value in expected.items():
    assert scores[key].shape == (N,) and np.all(np.isfinite(scores[key])), key
    np.testing.assert_allclose(scores[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
