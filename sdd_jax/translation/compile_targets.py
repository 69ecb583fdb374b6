"""The translation task's programs for the compile check (`python -m sdd_jax.aot`): the real
jitted train step (`step.make_train_step`: label smoothing, PS-KD when configured) and the
teacher-forced NLL (`step.make_nll_fn`), with abstract arguments sharded over `mesh`.

No corpus is opened. The train step compiles one shape per length bucket; the check compiles
the longest, L = `data.max_len` tokens per side, with the rows the loader gives it (the largest
multiple of the device count with rows * L <= `data.tokens_per_batch`, at least one row per
device: `text_data.py`). Tokens per step is rows * L (padded slots; the real count is lower).
"""
from typing import Any, Dict

import jax
import jax.numpy as jnp

from sdd_jax import parallel
from sdd_jax.translation import model as model_lib
from sdd_jax.translation import optim
from sdd_jax.translation import step as step_lib
from sdd_jax.translation import trainer
from sdd_jax.translation import validation

STEPS_PER_EPOCH = 1000  # PS-KD's alpha schedule needs one; it does not change the program's shape


def create_targets(config, mesh) -> Dict[str, Any]:
  """{'train': (jitted step, abstract args), 'eval': (jitted nll_fn, abstract args), 'state',
  'unit': 'tokens', 'per_step': padded tokens per side per step, 'eval_per_step'}."""
  validation.validate(config)
  devices = mesh.devices.size
  length = int(config.data.max_len)
  rows = max(devices, config.data.tokens_per_batch // length // devices * devices)
  lr_schedule = optim.make_lr_schedule(config.optim)
  tx = optim.make_optimizer(config.optim, lr_schedule)
  model = model_lib.create_model(config.model, config.data.vocab_size)
  epsilon, alpha = trainer.method_settings(config)
  train_step = step_lib.make_train_step(
      model, tx, seed=config.seed, lr_schedule=lr_schedule, mesh=mesh, epsilon=epsilon,
      pskd_alpha=alpha, steps_per_epoch=STEPS_PER_EPOCH, num_epochs=config.num_epochs)
  sample = jnp.ones((1, 2), jnp.int32)
  abstract = jax.eval_shape(
      lambda: trainer.create_state(model, tx, config, sample, sample, mesh))
  replicated = parallel.replicated_sharding(mesh)
  state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                       abstract)
  data = parallel.data_sharding(mesh)
  tokens = jax.ShapeDtypeStruct((rows, length), jnp.int32, sharding=data)
  batch = {'src': tokens, 'tgt_in': tokens, 'tgt_out': tokens}
  eval_batch = dict(batch, mask=jax.ShapeDtypeStruct((rows,), jnp.bool_, sharding=data))
  return dict(train=(train_step, (state, batch)),
              eval=(step_lib.make_nll_fn(model, mesh), (state.params, eval_batch)),
              state=state, unit='tokens', per_step=rows * length, eval_per_step=rows * length,
              devices=devices)

