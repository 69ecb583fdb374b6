"""Augmentation and normalisation of uint8 images; every random draw comes from per-example keys.

A key is a row of non-negative ints, e.g. `(seed, epoch, index, view)`. `random_words` hashes
each row into independent uint64 words, so an example's augmentation depends on its key alone:
not on the batch it lands in, the batch size or the number of processes.

- `cifar`: zero-pad by `crop_padding`, random `image_size` crop, random horizontal flip; one
  vectorised gather for the whole batch. Eval: the image as it is.
- `imagenet`: random-resized crop (scale (0.08, 1), ratio (3/4, 4/3), bilinear) + flip, per
  example with PIL. Eval: shorter side to `eval_resize`, centre `image_size` crop.
- `none`: the image as it is, in training and eval.
The result stays uint8: normalisation, `(x / 255 - mean) / std` per channel, happens on the
device inside the jitted step (normalization.py); `normalize` here is its NumPy form.
"""
import math
from typing import Callable, Sequence, Tuple

import numpy as np
from PIL import Image

from sdd_jax.data.sources import DataError, Images

AUGMENTATIONS = ('cifar', 'imagenet', 'none')
RESIZED_CROP_SCALE = (0.08, 1.0)
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)

_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio


def _mix(z: np.ndarray) -> np.ndarray:
  """The splitmix64 finaliser: a bijection of uint64 that scatters every input bit."""
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return z ^ (z >> np.uint64(31))


def random_words(keys, count: int) -> np.ndarray:
  """keys int [n, k] (non-negative) -> uint64 [n, count] pseudo-random words, a pure function of
  each row."""
  keys = np.atleast_2d(np.asarray(keys, np.int64)).astype(np.uint64)
  state = np.full(len(keys), _GOLDEN, np.uint64)
  for column in keys.T:
    state = _mix((state ^ column) + np.uint64(_GOLDEN))
  return np.stack([_mix(state + np.uint64(_GOLDEN * (2 * t + 1) % 2**64)) for t in range(count)],
                  axis=1)


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
  """uint8 [..., C] -> float32 [..., C]: `(images / 255 - mean) / std` on the host (the batches
  themselves are normalised on the device: normalization.py)."""
  std = np.asarray(std, np.float64)
  scale = (1 / (255 * std)).astype(np.float32)
  bias = (-np.asarray(mean, np.float64) / std).astype(np.float32)
  out = images.astype(np.float32)
  out *= scale
  out += bias
  return out


def crop_and_flip(images: np.ndarray, top: np.ndarray, left: np.ndarray, flip: np.ndarray,
                  size: int, padding: int) -> np.ndarray:
  """Zero-pads uint8 [n, H, W, C] by `padding`, then takes the `size` x `size` window at
  (top[i], left[i]) of the padded image i, mirrored left-right where flip[i]
  -> uint8 [n, size, size, C]."""
  n, height, width, channels = images.shape
  padded = np.zeros((n, height + 2 * padding, width + 2 * padding, channels), np.uint8)
  padded[:, padding:padding + height, padding:padding + width] = images
  # Each pixel's C bytes as one item, so the gather moves whole pixels.
  pixels = padded.view(np.dtype((np.void, channels)))[..., 0]
  offsets = np.arange(size)
  rows = top[:, None] + offsets  # [n, size]
  cols = left[:, None] + np.where(flip[:, None], size - 1 - offsets, offsets)  # [n, size]
  out = pixels[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
  return out[..., None].view(np.uint8).reshape(n, size, size, channels)


def draw_crop_and_flip(keys, height: int, width: int, size: int, padding: int,
                       flip: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """-> top, left int [n] uniform over the valid windows of the padded image, flip bool [n]."""
  words = random_words(keys, 3)
  top = words[:, 0] % np.uint64(height + 2 * padding - size + 1)
  left = words[:, 1] % np.uint64(width + 2 * padding - size + 1)
  flips = (words[:, 2] & np.uint64(1)).astype(bool) & flip
  return top.astype(np.int64), left.astype(np.int64), flips


def _resize(image: np.ndarray, box: Tuple[int, int, int, int], size: Tuple[int, int]):
  """uint8 [H, W, C]: the region box=(left, top, right, bottom) resized bilinearly to
  size=(width, height) -> uint8 [height, width, C]."""
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize(size, Image.BILINEAR, box=box))
  return out[..., None] if out.ndim == 2 else out


def random_resized_crop(image: np.ndarray, rng: np.random.Generator, size: int,
                        scale=RESIZED_CROP_SCALE, ratio=RESIZED_CROP_RATIO) -> np.ndarray:
  """torchvision's RandomResizedCrop: uint8 [H, W, C] -> [size, size, C]. Ten tries at a box of
  area fraction ~U(scale) and log-aspect ~U(log ratio); else the centre box clamped to `ratio`."""
  height, width = image.shape[:2]
  for _ in range(10):
    area = height * width * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
      return _resize(image, (left, top, left + w, top + h), (size, size))
  aspect = width / height
  if aspect < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif aspect > ratio[1]:
    w, h = int(round(height * ratio[1])), height
  else:
    w, h = width, height
  top, left = (height - h) // 2, (width - w) // 2
  return _resize(image, (left, top, left + w, top + h), (size, size))


def resize_and_centre_crop(image: np.ndarray, resize: int, size: int) -> np.ndarray:
  """torchvision's Resize(resize) + CenterCrop(size): uint8 [H, W, C] -> [size, size, C]."""
  height, width = image.shape[:2]
  if height <= width:
    new_height, new_width = resize, int(resize * width / height)
  else:
    new_height, new_width = int(resize * height / width), resize
  resized = _resize(image, (0, 0, width, height), (new_width, new_height))
  top = int(round((new_height - size) / 2))
  left = int(round((new_width - size) / 2))
  return resized[top:top + size, left:left + size]


def check_image_shape(data_config, shape: Sequence[int]) -> None:
  """Raises DataError if images of `shape` [H, W, C] do not fit `data_config`."""
  channels = shape[-1]
  if len(data_config.mean) != channels or len(data_config.std) != channels:
    raise DataError(f'images have {channels} channels but config.data.mean/std have '
                    f'{len(data_config.mean)}/{len(data_config.std)} values; give one per channel')
  if data_config.augment not in AUGMENTATIONS:
    raise DataError(f'unknown config.data.augment {data_config.augment!r}; known: '
                    + ', '.join(AUGMENTATIONS))
  if data_config.augment == 'imagenet':
    if data_config.eval_resize < data_config.image_size:
      raise DataError(f'config.data.eval_resize {data_config.eval_resize} is smaller than '
                      f'image_size {data_config.image_size}; the centre crop needs resize >= size')
  elif tuple(shape[:2]) != (data_config.image_size,) * 2:
    raise DataError(f'images are {shape[0]}x{shape[1]} but config.data.image_size is '
                    f'{data_config.image_size} with augment={data_config.augment!r}; set '
                    f"image_size, or augment='imagenet' for images of other or varying sizes")


def _stack(images: Images) -> np.ndarray:
  if isinstance(images, np.ndarray):
    return images
  shapes = {image.shape for image in images}
  if len(shapes) > 1:
    raise DataError(f'images of different sizes {sorted(shapes)[:3]}...; use '
                    "config.data.augment='imagenet', which resizes them")
  return np.stack(images)


def make_augment_fn(data_config, train: bool) -> Callable[[Images, np.ndarray], np.ndarray]:
  """-> `augment_fn(images, keys)`: uint8 [n, H, W, C] (or a list of [H_i, W_i, C]) and keys
  int [n, k] -> uint8 [n, image_size, image_size, C], augmented (if `train`), not normalised.
  Evaluation ignores the keys."""
  size, padding, flip = data_config.image_size, data_config.crop_padding, data_config.flip
  kind = data_config.augment

  def augment_fn(images: Images, keys) -> np.ndarray:
    for image in images[:1]:
      check_image_shape(data_config, image.shape)
    if kind == 'imagenet':
      if train:
        rngs = [np.random.default_rng(int(word)) for word in random_words(keys, 1)[:, 0]]
        crops = [random_resized_crop(image, rng, size) for image, rng in zip(images, rngs)]
        crops = [crop[:, ::-1] if flip and rng.random() < 0.5 else crop
                 for crop, rng in zip(crops, rngs)]
      else:
        crops = [resize_and_centre_crop(image, data_config.eval_resize, size) for image in images]
      uint8 = np.stack(crops)
    else:
      uint8 = _stack(images)
      if kind == 'cifar' and train:
        _, height, width, _ = uint8.shape
        top, left, flips = draw_crop_and_flip(keys, height, width, size, padding, flip)
        uint8 = crop_and_flip(uint8, top, left, flips, size, padding)
    return uint8

  return augment_fn
