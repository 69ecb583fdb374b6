"""Augmentation against independent NumPy/PIL computations."""
import ml_collections
import numpy as np
import pytest
from PIL import Image

from sdd_jax.data import DataError
from sdd_jax.data import augment

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def _config(**overrides):
  config = ml_collections.ConfigDict(dict(
      augment='cifar', image_size=32, crop_padding=4, flip=True, eval_resize=36, mean=MEAN,
      std=STD))
  config.update(overrides)
  return config


def _images(n=16, height=32, width=32, channels=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, height, width, channels), np.uint8)


def test_normalize_matches_formula():
  images = _images(4)
  expected = (images / 255.0 - np.array(MEAN)) / np.array(STD)
  got = augment.normalize(images, MEAN, STD)
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=2e-6)


def test_crop_and_flip_equals_slicing_of_padded_image():
  images, padding, size = _images(20, channels=3), 4, 32
  rng = np.random.default_rng(1)
  top, left = rng.integers(0, 9, 20), rng.integers(0, 9, 20)
  flip = rng.random(20) < 0.5
  got = augment.crop_and_flip(images, top, left, flip, size, padding)
  for i in range(20):
    padded = np.pad(images[i], ((padding, padding), (padding, padding), (0, 0)))
    window = padded[top[i]:top[i] + size, left[i]:left[i] + size]
    np.testing.assert_array_equal(got[i], window[:, ::-1] if flip[i] else window)


def test_crop_and_flip_grayscale_and_corner_offsets():
  images = _images(2, height=8, width=8, channels=1)
  got = augment.crop_and_flip(images, np.array([0, 2]), np.array([2, 0]), np.array([False, True]),
                              8, 1)
  padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
  np.testing.assert_array_equal(got[0], padded[0, 0:8, 2:10])
  np.testing.assert_array_equal(got[1], padded[1, 2:10, 0:8][:, ::-1])
  assert np.all(got[0, 0] == 0)  # the top padding row


def test_draw_covers_every_offset_and_both_flips():
  keys = np.stack([np.zeros(2000, int), np.arange(2000)], axis=1)
  top, left, flip = augment.draw_crop_and_flip(keys, 32, 32, 32, 4, True)
  assert set(top) == set(range(9)) and set(left) == set(range(9))
  assert 0.4 < flip.mean() < 0.6
  _, _, no_flip = augment.draw_crop_and_flip(keys, 32, 32, 32, 4, False)
  assert not no_flip.any()


def test_random_words_are_a_pure_function_of_each_key():
  keys = np.array([[0, 1, 2, 0], [0, 1, 2, 1], [0, 1, 3, 0]])
  words = augment.random_words(keys, 3)
  np.testing.assert_array_equal(words[1:2], augment.random_words(keys[1:2], 3))
  assert len(np.unique(words)) == words.size


def test_cifar_augment_fn_is_draw_then_crop_and_stays_uint8():
  config, images = _config(), _images(8)
  keys = np.stack([np.arange(8), np.ones(8, int)], axis=1)
  top, left, flip = augment.draw_crop_and_flip(keys, 32, 32, 32, 4, True)
  expected = augment.crop_and_flip(images, top, left, flip, 32, 4)
  got = augment.make_augment_fn(config, True)(images, keys)
  assert got.dtype == np.uint8  # normalised on the device (normalization.py)
  np.testing.assert_array_equal(got, expected)
  np.testing.assert_array_equal(augment.make_augment_fn(config, False)(list(images), None), images)


def test_random_resized_crop_is_a_resized_box_of_the_image():
  image = _images(1, 40, 60)[0]
  for seed in range(20):
    crop = augment.random_resized_crop(image, np.random.default_rng(seed), 16)
    assert crop.shape == (16, 16, 3) and crop.dtype == np.uint8
  # A constant image stays constant whatever box is chosen.
  flat = np.full((30, 50, 1), 7, np.uint8)
  np.testing.assert_array_equal(augment.random_resized_crop(flat, np.random.default_rng(0), 8),
                                np.full((8, 8, 1), 7))


def test_random_resized_crop_falls_back_to_the_centre_when_no_box_fits():
  image = _images(1, 4, 400)[0]  # ratio 100: every try fails, fallback clamps to 4/3
  rng = np.random.default_rng(0)
  crop = augment.random_resized_crop(image, rng, 4, scale=(0.99, 1.0))
  expected = np.asarray(Image.fromarray(image).resize((4, 4), Image.BILINEAR,
                                                      box=(197, 0, 202, 4)))
  np.testing.assert_array_equal(crop, expected)


def test_resize_and_centre_crop_matches_pil():
  image = _images(1, 30, 50)[0]
  resized = np.asarray(Image.fromarray(image).resize((60, 36), Image.BILINEAR))
  np.testing.assert_array_equal(augment.resize_and_centre_crop(image, 36, 32),
                                resized[2:34, 14:46])


def test_imagenet_augment_fn_handles_varying_sizes_and_grayscale():
  config = _config(augment='imagenet', image_size=16, eval_resize=18, mean=(0.5,), std=(0.25,))
  images = [_images(1, h, w, 1, seed=h)[0] for h, w in [(12, 41), (47, 17), (16, 16)]]
  keys = np.stack([np.arange(3), np.zeros(3, int)], axis=1)
  train = augment.make_augment_fn(config, True)(images, keys)
  assert train.shape == (3, 16, 16, 1) and train.dtype == np.uint8
  np.testing.assert_array_equal(train, augment.make_augment_fn(config, True)(images, keys))
  assert augment.make_augment_fn(config, False)(images, None).shape == (3, 16, 16, 1)


@pytest.mark.parametrize('overrides, shape, match', [
    (dict(), (32, 32, 1), 'mean/std have 3/3 values'),
    (dict(augment='cifar'), (28, 28, 3), 'images are 28x28 but config.data.image_size is 32'),
    (dict(augment='autoaugment'), (32, 32, 3), 'unknown config.data.augment'),
    (dict(augment='imagenet', eval_resize=20), (50, 50, 3), 'eval_resize 20 is smaller'),
])
def test_check_image_shape_says_what_to_change(overrides, shape, match):
  with pytest.raises(DataError, match=match):
    augment.check_image_shape(_config(**overrides), shape)
