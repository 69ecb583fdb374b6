"""`fgsm`: spec vectors F1 (all three variants) and F2, the step direction and clipping, and the
evaluator on a linear fake model against an independent NumPy computation."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sdd_jax.evaluators import fgsm

# F1 / F2 (docs/evaluation.md §3): one pixel, three channels, logits = W x_n + b.
W = np.array([[1., -2., .5], [-1., 1., 2.], [.5, .5, -1.]])
B = np.array([.1, 0., -.1])


def _attack(fake, variant, epsilon, x, label):
  """The F1 model on pixel x [3] -> (attacked pixels [3], logits [3])."""
  mean, std = np.asarray(fake.MEAN), np.asarray(fake.STD)
  predict = fake.linear(W, B)
  images = jnp.asarray(((np.asarray(x) - mean) / std).reshape(1, 1, 1, 3), jnp.float32)
  logits = predict.logits_fn(images)
  attack = fgsm.Attack(variant, epsilon)
  labels = (jnp.argmax(logits, -1) if attack.labels == 'predicted'
            else jnp.asarray([label], jnp.int32))
  grads = predict.input_grad_fn(images, labels, 1.0)
  adversarial = fgsm.adversarial_images(attack, images, grads, fake.MEAN, fake.STD)
  return np.asarray(adversarial).reshape(3), np.asarray(predict.logits_fn(adversarial)).reshape(3)


def test_f1_clean_logits(fake):
  x_n = (np.array([0.2, 0.5, 0.8]) - fake.MEAN) / np.asarray(fake.STD)
  np.testing.assert_allclose(x_n, [-1.148896371, 0.052652106, 1.300144823], rtol=1e-8)
  np.testing.assert_allclose(W @ x_n + B, [-0.504128172, 3.801838122, -1.948266955], rtol=1e-8)


@pytest.mark.parametrize('variant, epsilon, x_adv, logits, prediction', [
    # FGSM-paper: x_n + 0.2 sign = [-0.948896, -0.147348, 1.100145], clamped to [0, 0, 1].
    ('paper', 0.2, [0., 0., 1.], [0.6, 2.0, -1.1], 1),
    # The clamp alone (ε = 0).
    ('paper', 0.0, [0., 0.052652106, 1.], [0.494696, 2.052652, -1.073674], 1),
])
def test_f1_paper(fake, variant, epsilon, x_adv, logits, prediction):
  adversarial, got = _attack(fake, variant, epsilon, [0.2, 0.5, 0.8], 1)
  np.testing.assert_allclose(adversarial, x_adv, atol=1e-6)  # normalised units
  np.testing.assert_allclose(got, logits, atol=1e-5)
  assert int(np.argmax(got)) == prediction


@pytest.mark.parametrize('variant, x, label, pixels, logits, prediction', [
    ('pix', [0.2, 0.5, 0.8], 1, [0.4, 0.3, 0.6],
     [1.442100720, 0.825358027, -1.240058109], 0),  # F1: fooled
    ('norm', [0.2, 0.5, 0.8], 1, [0.25346, 0.44872, 0.74476],
     [-0.004128172, 3.001838122, -1.748266955], 1),  # F1
    ('pix', [0.1, 0.5, 0.9], 0, [0., 0.7, 1.0],
     [-2.450357064, 6.778318217, -2.656475801], 1),  # F2: clipped at both ends
])
def test_f1_f2_pixel_space_variants(fake, variant, x, label, pixels, logits, prediction):
  adversarial, got = _attack(fake, variant, 0.2, x, label)
  np.testing.assert_allclose(adversarial * fake.STD + np.asarray(fake.MEAN), pixels, atol=1e-5)
  np.testing.assert_allclose(got, logits, atol=1e-5)
  assert int(np.argmax(got)) == prediction


def test_attack_steps_and_bounds():
  std, mean = (0.2, 0.25, 0.5), (0.5, 0.5, 0.5)
  np.testing.assert_allclose(fgsm.Attack('pix', 0.1).step(std), [0.5, 0.4, 0.2])
  np.testing.assert_allclose(fgsm.Attack('norm', 0.1).step(std), [0.1, 0.1, 0.1])
  lower, upper = fgsm.Attack('pix', 0.1).bounds(mean, std)
  np.testing.assert_allclose(lower, [-2.5, -2, -1])
  np.testing.assert_allclose(upper, [2.5, 2, 1])
  assert [b.tolist() for b in fgsm.Attack('paper', 0.2).bounds(mean, std)] == [[0.] * 3, [1.] * 3]
  assert fgsm.Attack('pix', 8 / 255).key == 'fgsm/pix_0.03137'
  assert fgsm.Attack('paper', 0.0).key == 'fgsm/paper_0'


def test_zero_gradient_does_not_move_the_pixel():
  """sign(0) = 0 (np.sign, as ART): a zero gradient leaves the pixel, up to the clip."""
  images = jnp.array([[[[0.5, 0.5, 2.0]]]])
  grads = jnp.array([[[[0., -3., 0.]]]])
  out = fgsm.step_and_clip(images, grads, np.full(3, 0.2), np.zeros(3), np.ones(3))
  np.testing.assert_allclose(out.reshape(3), [0.5, 0.3, 1.0])


def _reference(fake, images_uint8, labels, w, b, attack):
  """NumPy float64: the attacked images' top-1 correct count, and per-example CE before/after."""
  mean, std = np.asarray(fake.MEAN), np.asarray(fake.STD)
  x = (images_uint8 / 255.0 - mean) / std

  def logits(x):
    return x.mean(axis=(1, 2)) @ w.T + b

  def ce(z, y):
    z = z - z.max(-1, keepdims=True)
    return np.log(np.exp(z).sum(-1)) - z[np.arange(len(y)), y]

  z = logits(x)
  targets = z.argmax(-1) if attack.labels == 'predicted' else labels
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  grad_channels = (p - np.eye(w.shape[0])[targets]) @ w  # d CE / d mean-pixel, [n, C]
  lower, upper = attack.bounds(mean, std)
  adv = np.clip(x + attack.step(std) * np.sign(grad_channels)[:, None, None, :], lower, upper)
  return int((logits(adv).argmax(-1) == labels).sum()), ce(z, labels), ce(logits(adv), labels)


def test_evaluator_matches_numpy_on_a_linear_model(fake, tmp_path):
  rng = np.random.default_rng(1)
  n, classes = 37, 10
  images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, classes, n)
  w, b = rng.normal(size=(classes, 3)) * 3, rng.normal(size=classes)
  ctx = fake.ctx(tmp_path, fake.array_source(images, labels, classes), batch_size=16)
  out = fgsm.Fgsm()(ctx, fake.linear(w, b))
  assert set(out) == {'fgsm/clean', 'fgsm/paper_0', 'fgsm/paper_0.2', 'fgsm/pix_0.03137',
                      'fgsm/pix_0.2', 'fgsm/norm_0.2', 'fgsm/count', 'fgsm/nonfinite'}
  assert out['fgsm/count'] == n
  for attack in fgsm.create_attacks(fgsm.Fgsm().section):
    correct, ce_clean, ce_adv = _reference(fake, images, labels, w, b, attack)
    assert out[attack.key] == pytest.approx(100 * correct / n), attack.key
    if attack.labels == 'true':  # a step up the loss (convex in x: CE(x + δ) >= CE(x) + g·δ)
      assert np.all(ce_adv >= ce_clean - 1e-9) and np.any(ce_adv > ce_clean + 1e-3)
  assert out['fgsm/pix_0.2'] < out['fgsm/clean']
  record = json.loads((tmp_path / 'evals/fgsm/results.json').read_text())
  assert record['metrics'] == pytest.approx(out)
  assert 'FGSM-paper' in record['label'] and record['normalisation']['std'] == list(fake.STD)
  pix = next(a for a in record['details']['attacks'] if a['key'] == 'fgsm/pix_0.2')
  np.testing.assert_allclose(pix['step_pixels'], [0.2] * 3)
  np.testing.assert_allclose(pix['step_normalised'], 0.2 / np.asarray(fake.STD))


def test_batch_size_and_devices_do_not_change_the_result(fake, tmp_path):
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, (13, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, 13)
  predict = fake.linear(rng.normal(size=(10, 3)) * 3, rng.normal(size=10))
  section = {'epsilons': (0.1,), 'norm_epsilons': (), 'paper_epsilons': (0.2,)}
  source = fake.array_source(images, labels)
  a = fgsm.Fgsm(section)(fake.ctx(tmp_path, source, batch_size=8), predict)
  b = fgsm.Fgsm(section)(fake.ctx(tmp_path, source, batch_size=5, devices=jax.devices()[:1]),
                         predict)
  assert a == b and set(a) == {'fgsm/clean', 'fgsm/paper_0.2', 'fgsm/pix_0.1', 'fgsm/count',
                                'fgsm/nonfinite'}


def test_negative_epsilon_is_refused():
  with pytest.raises(ValueError, match='ε must be >= 0'):
    fgsm.create_attacks({'epsilons': (-0.1,), 'norm_epsilons': (), 'paper_epsilons': ()})
