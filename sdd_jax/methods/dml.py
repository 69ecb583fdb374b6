"""DML (Zhang et al. 2018, "Deep Mutual Learning"): two networks of the same architecture in one
train state (`params = {'net0': ..., 'net1': ...}`, `batch_stats` likewise), updated together
by one optimizer in one step on the same batch.

Loss: the cross-entropy averaged over the two networks (`ctx.ce_logits`, weight 1/2 each) plus
the term `KL(sg p^T(net1) || p^T(net0)) + KL(sg p^T(net0) || p^T(net1))` at T = 3, weight 1:
each network learns from its detached peer. Network 0 is initialised with the run's key (as a
single-network run), network 1 with the key with 1 folded in.

Other methods (SD-Dropout) run once per network on that network's own features and head
(`ctx.members`; network 1's masks come from the method key with 1 folded in) and their terms
are averaged over the two, keeping their weight relative to the (averaged) cross-entropy.
Network i > 0 draws its dropout from the model rngs with i folded in.
Evaluation: network 0 is the headline (`test/...`, `inference_variables`); network 1 and the
ensemble (log of the averaged probabilities) are reported as `dml/net1/...` and
`dml/ensemble/...`.
"""
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from sdd_jax import losses
from sdd_jax.methods import base
from sdd_jax.methods import forwards

NETWORKS = ('net0', 'net1')


def network_variables(variables, name: str):
  """The variables of one of the two networks (collections without it, e.g. no BatchNorm, are
  left out)."""
  return {collection: tree[name] for collection, tree in variables.items() if name in tree}


def _net1_logits(model, variables, images):
  return model.apply(network_variables(variables, 'net1'), images, train=False)


def _ensemble_logits(model, variables, images):
  log_probs = [jax.nn.log_softmax(model.apply(network_variables(variables, name), images,
                                              train=False).astype(jnp.float32))
               for name in NETWORKS]
  return jax.nn.logsumexp(jnp.stack(log_probs), axis=0) - jnp.log(len(NETWORKS))


@dataclasses.dataclass(frozen=True)
class DML(base.Method):
  weight: float = 1.0
  temperature: float = 3.0

  name: ClassVar[str] = 'dml'
  label: ClassVar[str] = 'DML'
  paper_order: ClassVar[int] = 4
  compared: ClassVar[bool] = True
  owns_forward: ClassVar[bool] = True
  summary: ClassVar[str] = 'two networks'

  def init_network(self, model, key, sample_images):
    inits = [model.init(key if i == 0 else jax.random.fold_in(key, i), sample_images,
                        train=False) for i in range(len(NETWORKS))]
    return {collection: {name: init[collection] for name, init in zip(NETWORKS, inits)}
            for collection in inits[0]}

  def inference_variables(self, variables):
    return network_variables(variables, NETWORKS[0])

  def eval_logits(self):
    return {'dml/net1': _net1_logits, 'dml/ensemble': _ensemble_logits}

  def forward(self, model, variables, batch, *, key, rngs):
    del key
    members, batch_stats = [], {}
    for i, name in enumerate(NETWORKS):
      member_rngs = rngs if i == 0 else {k: jax.random.fold_in(r, i) for k, r in rngs.items()}
      member, stats = forwards.plain_forward(model, network_variables(variables, name), batch,
                                             rngs=member_rngs)
      if stats:
        batch_stats[name] = stats
      members.append(member)
    share = 1.0 / len(members)
    ctx = dataclasses.replace(members[0], members=tuple(members),
                              ce_logits=tuple((m.logits, share) for m in members))
    return ctx, batch_stats

  def loss(self, ctx, key):
    del key
    logits0, logits1 = (m.logits for m in ctx.members)
    sg = jax.lax.stop_gradient
    term = (losses.kl_divergence(sg(logits1), logits0, self.temperature)
            + losses.kl_divergence(sg(logits0), logits1, self.temperature))
    top1 = 100 * jnp.mean(jnp.argmax(logits1, -1) == ctx.batch['labels'])
    return term, {'train/dml_net1_top1': top1}
