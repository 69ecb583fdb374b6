"""PS-KD (Kim et al. 2021, "Self-Knowledge Distillation with Progressive Refinement of
Targets").

A table `[rows, classes]` float32 holds each example's softmax (T = 1) from its last visit:
taken in the train step before the update, training mode, augmented view, and written at the
example's row (`batch['index']`) inside the jitted step. Within an epoch every example is seen
at most once, so a batch never writes one row twice. The cross-entropy targets become
`(1 - alpha_t) * onehot(y) + alpha_t * sg(table[index])` with
`alpha_t = alpha * (epoch + 1) / num_epochs` (alpha_T = 0.8, epoch counted from 0 and derived
from the step and the steps per epoch); in the first epoch the table is empty and the targets
are one-hot. The loader drops each epoch's last partial batch, so an example may miss an epoch:
its row then holds its prediction from an earlier epoch, and an example never seen yet (an
all-zero row) gets one-hot targets instead of an unnormalised mixture. The soft-target CE
replaces the plain CE; there is no term, so `weight` and `temperature` stay 1. With CS-KD the
anchors' predictions are recorded, with DDGSD the first view's.

Layout: the table is state (`TrainState.method_states['ps_kd']['table']`, checkpointed with
the rest, so a resumed run continues with the very same targets) and is sharded by rows over
the mesh's 'data' axis, `P('data', None)`: each of N devices holds rows/N (ImageNet: 1.28M x
1000 x 4 B = 5.1 GB in all, 640 MB per device on 8 devices), never a full copy. Reads and writes
go through `parallel.gather_rows` / `parallel.set_rows` (shard_map): the batch's indices and its
`[B, classes]` rows are all that crosses devices. Rows are padded to a multiple of
lcm(1024, devices) (`parallel.padded_rows`), so the table splits evenly and, for power-of-two
device counts up to 1024, the checkpoint's shape does not depend on the device count. Keeping
it on the host instead would cost a device-to-host round trip in every step and a second
checkpoint path; sharding it keeps the one jitted step and orbax's sharded checkpoints.
"""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from sdd_jax import parallel
from sdd_jax.methods import base


@dataclasses.dataclass(frozen=True)
class PSKD(base.Method):
  alpha: float = 0.8

  name: ClassVar[str] = 'ps_kd'
  label: ClassVar[str] = 'PS-KD'
  compared: ClassVar[bool] = True
  has_term: ClassVar[bool] = False
  sets_targets: ClassVar[bool] = True
  keeps_state: ClassVar[bool] = True
  needs: ClassVar[tuple] = ('index',)
  summary: ClassVar[str] = "the network's past predictions"
  conflicts: ClassVar[dict] = {
      'dml': "ps_kd's table holds one network's past predictions and dml trains two"}

  def validate(self):
    super().validate()
    if not 0 <= self.alpha <= 1:
      raise ValueError(f'alpha: must be in [0, 1], got {self.alpha}')
    base.check_no_term(self, 'its soft targets replace the cross-entropy at T = 1; set alpha')

  def init_state(self, run):
    if not (run.num_examples and run.num_classes):
      raise ValueError('ps_kd needs the number of training examples and classes (RunInfo); '
                       'build the state through the trainer')
    rows = parallel.padded_rows(run.num_examples, run.num_devices)
    return {'table': jnp.zeros((rows, run.num_classes), jnp.float32)}

  def state_partition(self):
    return {'table': PartitionSpec(parallel.DATA_AXIS, None)}

  def alpha_at(self, step, run):
    """alpha_t for the epoch of `step`; 0 in the first epoch (the table is empty)."""
    if not (run.steps_per_epoch and run.num_epochs):
      raise ValueError('ps_kd needs steps_per_epoch and num_epochs (RunInfo); build the step '
                       'through the trainer')
    epoch = step // run.steps_per_epoch
    alpha = self.alpha * (epoch + 1) / run.num_epochs
    return jnp.where(epoch == 0, 0.0, alpha).astype(jnp.float32)

  def targets(self, ctx, key):
    del key
    table = ctx.method_states[self.name]['table']
    past = jax.lax.stop_gradient(parallel.gather_rows(table, ctx.batch['index'], ctx.mesh))
    onehot = jax.nn.one_hot(ctx.batch['labels'], ctx.logits.shape[-1], dtype=jnp.float32)
    past = jnp.where(jnp.sum(past, -1, keepdims=True) > 0, past, onehot)  # never seen: one-hot
    alpha = self.alpha_at(ctx.step, ctx.run)
    return (1 - alpha) * onehot + alpha * past

  def update_state(self, ctx, state):
    probs = jax.nn.softmax(jax.lax.stop_gradient(ctx.logits).astype(jnp.float32), axis=-1)
    return {'table': parallel.set_rows(state['table'], ctx.batch['index'], probs, ctx.mesh)}

  def loss(self, ctx, key):
    return None, {'train/ps_kd_alpha': self.alpha_at(ctx.step, ctx.run)}
