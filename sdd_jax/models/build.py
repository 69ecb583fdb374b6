"""`create_model(config)`: the network a config names, as training and evaluation build it.

It lives with the models (not in `trainer.py`) so that evaluation builds the network without
importing the training loop: `config.model.name` from the model registry, with
`config.data.num_classes` logits, `config.model.head_hidden`, `config.model.dtype`,
`config.model.bn_group` (examples per BatchNorm statistics group in training, 0 = the whole
batch; absent in an older config.json: 0) and the constructor options `config.model.kwargs`.
"""
import jax.numpy as jnp
import ml_collections

from sdd_jax import models as models_lib


def create_model(config: ml_collections.ConfigDict):
  """The flax module of `config.model` for `config.data.num_classes` classes."""
  return models_lib.get_model(config.model.name, num_classes=config.data.num_classes,
                              head_hidden=tuple(config.model.head_hidden),
                              dtype=jnp.dtype(config.model.dtype),
                              bn_group=config.model.get('bn_group', 0), **config.model.kwargs)
