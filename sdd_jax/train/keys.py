"""The random keys every task's train step derives, so that one device and eight, a straight
run and a resumed one, draw the same numbers.

`step_key(seed, step)` is the step's key (`fold_in(key(seed), step)`); `stream_key(key, name)`
folds in a stable number of `name` (crc32, 31 bits); `model_rngs(key)` are the rngs of a
training-mode `model.apply` (its dropout). The methods derive their own keys from the step
key with these (`methods/base.py`: `method_key`, `hook_key`).
"""
import zlib
from typing import Dict

import jax


def step_key(seed: int, step: jax.Array) -> jax.Array:
  return jax.random.fold_in(jax.random.key(seed), step)


def stream_key(key: jax.Array, name: str) -> jax.Array:
  """`key` with a stable number of `name` folded in (crc32, 31 bits)."""
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def model_rngs(key: jax.Array) -> Dict[str, jax.Array]:
  """The rngs of a training-mode `model.apply` (`{'dropout': stream_key(key, 'dropout')}`):
  from the step key for the forward, from a method's key for its extra passes."""
  return {'dropout': stream_key(key, 'dropout')}
