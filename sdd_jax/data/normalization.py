"""Images travel to the device as uint8 and are normalised there, inside the jitted function.

The host pipeline (augment.py, in worker processes) stops at uint8 pixels: a quarter of the
bytes of float32 to copy between processes and to send to the device. `make_normalize_fn`
returns the one function that turns them into what the methods see, `(x / 255 - mean) / std`
per channel, as the first operation of the train step (step.py), of the probe (trainer.py)
and of the evaluation batches (`normalize_eval_batch`).

It computes `x * (1 / (255 std)) + (-mean / std)` in float32 with both constants rounded from
float64, as the host formula `augment.normalize` did, then casts to the compute dtype.
"""
import functools
import types
from typing import Callable, Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

IMAGE_KEYS = ('images', 'second_view', 'pair_images')  # the batch keys holding images

Batch = Dict[str, jax.Array]


def normalization_constants(mean: Sequence[float],
                            std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  """-> (scale, bias) float32 [C]: 1 / (255 std) and -mean / std, rounded from float64."""
  std = np.asarray(std, np.float64)
  scale = (1 / (255 * std)).astype(np.float32)
  bias = (-np.asarray(mean, np.float64) / std).astype(np.float32)
  return scale, bias


def normalize_images(images: jax.Array, mean: Sequence[float], std: Sequence[float],
                     dtype=jnp.float32) -> jax.Array:
  """uint8 [..., C] -> `dtype` [..., C]: `(images / 255 - mean) / std`, computed in float32."""
  scale, bias = normalization_constants(mean, std)
  return (images.astype(jnp.float32) * scale + bias).astype(dtype)


def make_normalize_fn(data_config, dtype='float32') -> Callable[[Batch], Batch]:
  """-> `normalize_fn(batch) -> batch` (traceable): every uint8 image key (`IMAGE_KEYS`) is
  normalised with `data_config.mean/std` and cast to `dtype` (the compute dtype); rows whose `mask` (if the batch has one)
  is False become zeros, as padding rows were before. Floating-point images are taken as
  normalised already (the contract before uint8 batches) and pass unchanged; other keys too."""
  mean, std = tuple(data_config.mean), tuple(data_config.std)
  dtype = jnp.dtype(dtype)

  def normalize_fn(batch: Batch) -> Batch:
    out = dict(batch)
    for key in IMAGE_KEYS:
      if key not in batch or jnp.issubdtype(batch[key].dtype, jnp.floating):
        continue
      if batch[key].dtype != jnp.uint8:
        raise TypeError(f'batch[{key!r}] is {batch[key].dtype}; the input pipeline sends uint8 '
                        'pixels (or already normalised floats)')
      images = normalize_images(batch[key], mean, std, dtype)
      if 'mask' in batch:
        images = jnp.where(batch['mask'].reshape(-1, *[1] * (images.ndim - 1)), images, 0)
      out[key] = images
    return out

  return normalize_fn


def check_normalized(batch: Batch) -> Batch:
  """`batch` unchanged; TypeError if an image key holds uint8 pixels (a step built without
  `normalize_fn` would feed raw pixels to the network)."""
  raw = [key for key in IMAGE_KEYS if key in batch and batch[key].dtype == jnp.uint8]
  if raw:
    raise TypeError(f'batch keys {raw} hold uint8 pixels but the step has no normalize_fn; '
                    'build it with normalize_fn=make_normalize_fn(mean, std, dtype)')
  return batch


@functools.lru_cache(maxsize=16)
def _jitted_normalize_fn(mean: tuple, std: tuple):
  return jax.jit(make_normalize_fn(types.SimpleNamespace(mean=mean, std=std)))


def normalize_eval_batch(batch: Batch, data_config) -> Batch:
  """A global eval batch with uint8 images -> the same with normalised float32 images, padding
  rows zero (jitted once per (mean, std)); its sharding is kept."""
  return _jitted_normalize_fn(tuple(data_config.mean), tuple(data_config.std))(batch)
