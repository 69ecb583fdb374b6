"""The image task's programs for the compile check (`python -m sdd_jax.aot`): the real jitted
train step (`step.make_train_step`, every configured method) and the evaluation logits
(`evaluators.predict.make_logits_fn`), each with abstract arguments (`jax.ShapeDtypeStruct`s
carrying their shardings over `mesh`), so they compile for devices that are not here.

No data is opened: the batch is what the loader would give (uint8 images [batch, S, S, C] with
C = len(data.mean), int32 labels and index, plus `second_view` / `pair_images` when a method
needs them), and the training set's size (PS-KD's table rows, steps per epoch) comes from
`data.num_examples` or, for the named data sets below, their published train split size.
"""
from typing import Any, Dict

import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax.config import validation as config_validation
from sdd_jax.config.fields import ConfigError
from sdd_jax import data as data_lib
from sdd_jax.evaluators import predict
from sdd_jax import methods as methods_lib
from sdd_jax.models import build as models_build
from sdd_jax import parallel
from sdd_jax.train import optim
from sdd_jax.train import state as state_lib
from sdd_jax.classification import step as step_lib

# Train split sizes (tfds catalogue pages of each data set).
TRAIN_EXAMPLES = {'cifar10': 50_000, 'cifar100': 50_000, 'imagenet2012': 1_281_167,
                  'caltech_birds2011': 5_994, 'stanford_dogs': 12_000}


def num_examples(config) -> int:
  """The training set's size: `data.num_examples`, else the named data set's train split."""
  if config.data.get('num_examples', 0):
    return int(config.data.num_examples)
  if config.data.name in TRAIN_EXAMPLES:
    return TRAIN_EXAMPLES[config.data.name]
  raise ConfigError(f'data.num_examples: the compile check needs the training set size of '
                    f'{config.data.name!r} (set --config.data.num_examples=N)')


def _batch(config, rows: int, needs, mesh) -> Dict[str, jax.ShapeDtypeStruct]:
  sharding = parallel.data_sharding(mesh)
  size = config.data.image_size
  image = jax.ShapeDtypeStruct((rows, size, size, len(config.data.mean)), jnp.uint8,
                               sharding=sharding)
  ints = jax.ShapeDtypeStruct((rows,), jnp.int32, sharding=sharding)
  batch = {'images': image, 'labels': ints, 'index': ints}
  for key in ('second_view', 'pair_images'):
    if key in needs:
      batch[key] = image
  return batch


def create_targets(config, mesh) -> Dict[str, Any]:
  """{'train': (jitted step, abstract args), 'eval': (jitted logits_fn, abstract args),
  'state': the abstract train state, 'unit': 'images', 'per_step': images per train step,
  'eval_per_step': images per eval batch}. One-line ConfigErrors for a config that does not
  validate (or whose batch does not split over the mesh's devices)."""
  config_validation.validate(config)
  devices = mesh.devices.size
  config_validation.validate_for_devices(config, devices, 1)
  methods = methods_lib.create_methods(config.methods)
  examples = num_examples(config)
  steps_per_epoch = max(1, examples // config.batch_size)
  lr_schedule = optim.make_lr_schedule(config.optim, steps_per_epoch, config.num_epochs)
  tx = optim.make_optimizer(config.optim, lr_schedule)
  model = models_build.create_model(config)
  run = methods_lib.RunInfo(num_examples=examples, num_classes=config.data.num_classes,
                            steps_per_epoch=steps_per_epoch, num_epochs=config.num_epochs,
                            num_devices=devices)
  train_step = step_lib.make_train_step(
      model, tx, methods, seed=config.seed, lr_schedule=lr_schedule, mesh=mesh, run=run,
      normalize_fn=data_lib.make_normalize_fn(config.data, config.model.dtype))
  size = config.data.image_size
  sample = jnp.zeros((1, size, size, len(config.data.mean)), jnp.float32)
  state = state_lib.create_abstract_state(model, tx, config.seed, sample, mesh, methods, run)
  batch = _batch(config, config.batch_size, methods_lib.batch_needs(methods), mesh)
  # Evaluation: the plain network's logits over one padded eval batch, float32 images.
  eval_rows = parallel.eval_batch_rows(config.eval_batch_size, devices)
  variables = methods_lib.inference_variables(methods, state.variables)
  images = jax.ShapeDtypeStruct((eval_rows, size, size, len(config.data.mean)), jnp.float32,
                                sharding=parallel.data_sharding(mesh))
  logits_fn = predict.make_logits_fn(model, mesh)
  return dict(train=(train_step, (state, batch)), eval=(logits_fn, (variables, images)),
              state=state, unit='images', per_step=int(config.batch_size),
              eval_per_step=int(eval_rows), devices=int(np.prod(mesh.devices.shape)))
