"""`odin`: spec vector O1 in float64, the perturbation's direction (s(0) = +1) and no clipping,
T1/T2 against sklearn, the balanced protocol on a linear fake model against NumPy, OOD set
parsing, preprocessing and ordering, and missing sets (skipped with what to download)."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from sklearn import metrics as sk_metrics

from sdd_jax.data import ood
from sdd_jax.evaluators import base
from sdd_jax.evaluators import odin

W = np.array([[1., -2., .5], [-1., 1., 2.], [.5, .5, -1.]])  # F1 / O1 model
B = np.array([.1, 0., -.1])


def test_o1_float64(fake):
  """O1: the F1 model at T = 1000, ε = 0.0014, stepping the normalised input by ε/σ_c."""
  with jax.enable_x64(True):
    mean, std = np.asarray(fake.MEAN), np.asarray(fake.STD)
    predict = fake.linear(W, B)
    images = jnp.asarray(((np.array([0.2, 0.5, 0.8]) - mean) / std).reshape(1, 1, 1, 3))
    assert images.dtype == jnp.float64
    grads = predict.input_grad_fn(images, jnp.array([1]), 1000.0)
    np.testing.assert_allclose(grads.reshape(3), [1.16483e-3, -1.16531e-3, -1.49712e-3],
                               rtol=1e-4)
    perturbed = odin.perturb(images, grads, 0.0014 / std)
    np.testing.assert_allclose(perturbed.reshape(3) * std + mean, [0.1986, 0.5014, 0.8014],
                               rtol=1e-12)
    np.testing.assert_allclose(predict.logits_fn(perturbed).reshape(3),
                               [-0.517751774, 3.822673483, -1.953224417], atol=1e-9)
    scores = odin.batch_scores(predict, images, fake.STD, 1000.0, 0.0014)
    assert scores['odin'].dtype == jnp.float64
    assert float(scores['odin'][0]) == pytest.approx(-1.095243196748, rel=1e-9)
    assert float(jnp.exp(scores['odin'][0])) == pytest.approx(0.334458257897, rel=1e-9)
    assert float(jnp.exp(scores['msp'][0])) == pytest.approx(0.983603049569, rel=1e-9)
    no_step = odin.batch_scores(predict, images, fake.STD, 1000.0, 0.0)
    assert float(jnp.exp(no_step['odin'][0])) == pytest.approx(0.334451551334, rel=1e-9)


def test_perturbation_maps_zero_to_plus_and_does_not_clip():
  images = jnp.array([[[[5.0, -5.0, 0.0]]]])
  grads = jnp.array([[[[-1e-9, 1e-9, 0.0]]]])
  out = odin.perturb(images, grads, jnp.array([1.0, 2.0, 3.0]))
  np.testing.assert_allclose(out.reshape(3), [6.0, -7.0, -3.0])  # beyond any pixel range


@pytest.mark.parametrize('s_in, s_out, expected', [
    ([0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.90, 0.85, 0.80, 0.75, 0.70, 0.65,
      0.60, 0.55, 0.50, 0.40, 0.30], [0.95, 0.88, 0.72, 0.62, 0.45, 0.35, 0.25, 0.20, 0.15, 0.10],
     dict(fpr95=0.5, detection_error=0.25, detection_error_at_tpr95=0.275, auroc=0.7975,
          aupr_in=0.8739442584, aupr_out=0.7558299595)),  # T1
    ([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1],
     [0.85, 0.65, 0.45, 0.35, 0.25, 0.15, 0.12, 0.08, 0.05, 0.02],
     dict(fpr95=0.7, detection_error=0.3, detection_error_at_tpr95=0.35, auroc=0.73,
          aupr_in=0.7145378151, aupr_out=0.7838815789)),  # T2
])
def test_t1_t2_and_sklearn(s_in, s_out, expected):
  for transform in (np.asarray, np.log):  # only the ranking matters
    got = odin.detection_metrics(transform(s_in), transform(s_out))
    assert got == pytest.approx(expected, abs=1e-9)
  y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
  s = np.r_[s_in, s_out]
  assert got['auroc'] == pytest.approx(sk_metrics.roc_auc_score(y, s))
  assert got['aupr_in'] == pytest.approx(sk_metrics.average_precision_score(y, s))
  assert got['aupr_out'] == pytest.approx(sk_metrics.average_precision_score(1 - y, -s))


def _write_folder(root, rng, count, shape=(40, 36, 3)):
  """An ImageFolder-like tree root/{b,a}/<name>.png written in a shuffled order; returns the
  images in ImageFolder order (class folder, then file name)."""
  files = {}
  for i in rng.permutation(count):
    cls = 'a' if i % 3 else 'b'
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    path = os.path.join(root, cls, f'img_{i:03d}.png')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path)
    files[(cls, f'img_{i:03d}.png')] = image
  return [files[key] for key in sorted(files)]


def _reference_scores(fake, images_uint8, w, b, temperature, epsilon):
  """NumPy float64 ODIN and MSP scores of the linear fake model."""
  mean, std = np.asarray(fake.MEAN), np.asarray(fake.STD)
  x = (images_uint8 / 255.0 - mean) / std

  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

  z = x.mean(axis=(1, 2)) @ w.T + b
  predicted = z.argmax(-1)
  grad = (np.exp(log_softmax(z / temperature)) - np.eye(len(b))[predicted]) @ w / temperature
  sign = np.where(grad >= 0, 1.0, -1.0)[:, None, None, :]
  z_odin = (x - epsilon / std * sign).mean(axis=(1, 2)) @ w.T + b
  return log_softmax(z_odin / temperature).max(-1), log_softmax(z).max(-1)


def _sk(s_in, s_out):
  y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
  s = np.r_[s_in, s_out]
  fpr, tpr, _ = sk_metrics.roc_curve(y, s, drop_intermediate=False)
  return {'fpr95': fpr[np.searchsorted(tpr, 0.95, 'left')],
          'detection_error': np.min(0.5 * (1 - tpr) + 0.5 * fpr),
          'auroc': sk_metrics.roc_auc_score(y, s),
          'aupr_in': sk_metrics.average_precision_score(y, s),
          'aupr_out': sk_metrics.average_precision_score(1 - y, -s)}


def test_balanced_protocol_on_a_linear_model_matches_numpy(fake, tmp_path):
  rng = np.random.default_rng(0)
  in_images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
  ood_images = _write_folder(str(tmp_path / 'mine'), rng, 26)
  w, b = rng.normal(size=(10, 3)) * 50, rng.normal(size=10)
  ctx = fake.ctx(tmp_path, fake.array_source(in_images, rng.integers(0, 10, 30)), batch_size=8)
  section = {'sets': (f'mine={tmp_path / "mine"}',), 'holdout': 4, 'max_examples': 20,
             'epsilon': 0.01}
  out = odin.Odin(section)(ctx, fake.linear(w, b))

  # N_D = min(20, 26, 30) = 20: positions [4, 20) of both, in canonical order; 40x36 OOD
  # images centre-cropped to 32x32.
  crops = np.stack([image[4:36, 2:34] for image in ood_images[4:20]])
  odin_in, msp_in = _reference_scores(fake, in_images[4:20], w, b, 1000.0, 0.01)
  odin_out, msp_out = _reference_scores(fake, crops, w, b, 1000.0, 0.01)
  for method, s_in, s_out in (('odin', odin_in, odin_out), ('msp', msp_in, msp_out)):
    for key, value in _sk(s_in, s_out).items():
      assert out[f'{method}/mine/{key}'] == pytest.approx(100 * value, abs=1e-7), (method, key)
    assert out[f'{method}/mine/n_in'] == out[f'{method}/mine/n_out'] == 16
  record = json.loads((tmp_path / 'evals/odin/results.json').read_text())
  assert record['metrics'] == pytest.approx(out)
  details = record['details']['sets']['mine']
  assert (details['n_in'], details['N_D'], details['size']) == (16, 20, 26)
  assert (details['odin']['temperature'], details['odin']['epsilon']) == (1000.0, 0.01)
  assert (details['msp']['temperature'], details['msp']['epsilon']) == (1.0, 0.0)
  assert record['normalisation']['mean'] == list(fake.MEAN)


def test_missing_sets(fake, tmp_path):
  rng = np.random.default_rng(1)
  ctx = fake.ctx(tmp_path, fake.array_source(rng.integers(0, 256, (12, 32, 32, 3), np.uint8),
                                             rng.integers(0, 10, 12)), batch_size=8)
  predict = fake.linear(W[:, :3].repeat(4, 0)[:10], np.zeros(10))
  with pytest.raises(base.Skipped, match=r"'lsun'.*folder_root is not set.*LSUN\.tar\.gz"):
    odin.Odin({'sets': ('lsun',)})(ctx, predict)
  with pytest.raises(base.Skipped, match=r'tfds build svhn_cropped'):
    odin.Odin({'sets': 'svhn', 'data_dir': str(tmp_path / 'no_tfds')})(ctx, predict)
  _write_folder(str(tmp_path / 'mine'), rng, 10, (32, 32, 3))
  out = odin.Odin({'sets': f'isun,mine={tmp_path / "mine"}', 'folder_root': str(tmp_path),
                   'holdout': 2})(ctx, predict)
  assert out['skipped/odin/isun'] == 1.0 and out['odin/mine/n_in'] == 8
  record = json.loads((tmp_path / 'evals/odin/results.json').read_text())
  assert 'iSUN.tar.gz' in record['details']['skipped_sets']['isun']
  with pytest.raises(base.Skipped, match='lower config.evals.odin.holdout'):
    odin.Odin({'sets': f'mine={tmp_path / "mine"}'})(ctx, predict)  # holdout 1000 > 10


def test_parse_sets(tmp_path):
  sets = ood.parse_sets(('svhn', 'dtd,lsun', f'x={tmp_path}', 'y=tfds:cifar10:train'),
                        folder_root='/data/odin')
  assert [(s.name, s.kind, s.location, s.split) for s in sets] == [
      ('svhn', 'tfds', 'svhn_cropped', 'test'), ('dtd', 'tfds', 'dtd', 'train+validation+test'),
      ('lsun', 'folder', '/data/odin/LSUN', 'test'), ('x', 'folder', str(tmp_path), 'test'),
      ('y', 'tfds', 'cifar10', 'train')]
  assert sets[1].resize_shorter and sets[1].order_key == 'file_name'
  with pytest.raises(ValueError, match="unknown OOD set 'places'"):
    ood.parse_sets(('places',))
  with pytest.raises(ValueError, match='repeat'):
    ood.parse_sets(('svhn', 'svhn'))


def test_preprocessing_to_the_in_distribution_size():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (47, 17, 3), dtype=np.uint8)
  # DTD: shorter side to 32 (torchvision Resize(32): long side int(32 * 47 / 17) = 88), crop.
  expected = np.asarray(Image.fromarray(image).resize((32, 88), Image.BILINEAR))[28:60]
  np.testing.assert_array_equal(ood.make_transform(32, 3, True)(image), expected)
  large = rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)
  np.testing.assert_array_equal(ood.make_transform(32, 3, False)(large), large[2:34, 4:36])
  gray = rng.integers(0, 256, (32, 32, 1), dtype=np.uint8)
  assert ood.make_transform(32, 3, False)(gray).shape == (32, 32, 3)


def test_tfds_sets_in_canonical_order_with_mock_data(fake, tmp_path, monkeypatch):
  """dtd through the tfds path (tfds.testing.mock_data: variable-size images, no download)."""
  monkeypatch.setattr(tfds.core.DatasetBuilder, 'is_prepared', lambda self: True)
  rng = np.random.default_rng(2)
  ctx = fake.ctx(tmp_path, fake.array_source(rng.integers(0, 256, (30, 32, 32, 3), np.uint8),
                                             rng.integers(0, 10, 30)), batch_size=8)
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
    source, order = ood.open_set(ood.KNOWN_TFDS['dtd'])
    examples = source._examples  # pylint: disable=protected-access
    names = [examples[int(i)]['file_name'] for i in order]
    assert names == sorted(names) and len(order) == len(source) == 12
    out = odin.Odin({'sets': ('dtd',), 'holdout': 4})(ctx, fake.linear(W.repeat(4, 0)[:10],
                                                                       np.zeros(10)))
  assert out['odin/dtd/n_in'] == out['odin/dtd/n_out'] == 8
