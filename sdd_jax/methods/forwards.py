"""The training-mode forward passes methods share: one pass through the stages, keeping every
stage output, so that no method re-runs `model.stages`.

Every apply here is training mode with `rngs` (the model's dropout key) and returns the new
`batch_stats`; a model without BatchNorm has none (`{}`), which is never indexed.
"""
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

from sdd_jax.methods.base import StepContext


def _stages_and_features(module, images, train):
  outputs = module.stages(images, train)
  return tuple(outputs), module.from_stage(len(outputs), outputs[-1], train)


def stages_and_features(model, variables, images: jax.Array, *,
                        rngs: Optional[Mapping[str, jax.Array]] = None):
  """One training-mode pass: -> ((stage outputs...), pooled features [B, D], new batch_stats).

  `features == from_stage(len(stages), stages[-1])`, the staged-network contract
  (`models/heads.py`), i.e. the very computation of `model.features`."""
  (stage_outputs, features), updates = model.apply(
      variables, images, True, method=_stages_and_features, mutable=['batch_stats'],
      rngs=dict(rngs or {}))
  return stage_outputs, features, updates.get('batch_stats', {})


def plain_forward(model, variables, batch, *,
                  rngs: Optional[Mapping[str, jax.Array]] = None) -> Tuple[StepContext, Any]:
  """`logits = head(features(images))` in training mode; -> (context, new batch_stats)."""
  stage_outputs, features, batch_stats = stages_and_features(model, variables, batch['images'],
                                                             rngs=rngs)
  logits = model.apply(variables, features, method=model.head)
  return StepContext(model=model, variables=variables, batch=batch, features=features,
                     logits=logits, stage_outputs=stage_outputs), batch_stats


def joint_forward(model, variables, arrays: Sequence[jax.Array], *,
                  rngs: Optional[Mapping[str, jax.Array]] = None):
  """One training-mode forward of `len(arrays)` image batches `[B, H, W, C]` as ONE batch (one
  set of BatchNorm statistics over all of them, running averages updated once).

  The batches are interleaved example by example (`stack(axis=1)` then reshape), so each
  device's rows of the joint batch are its own rows of every input: no data need move between
  devices, and the global BatchNorm statistics are those of the concatenation.

  Returns:
    ([(features [B, D], logits [B, classes], stage outputs (each [B, ...])) per input],
     new batch_stats).
  """
  count, size = len(arrays), arrays[0].shape[0]
  images = jnp.stack(arrays, axis=1).reshape(count * size, *arrays[0].shape[1:])
  stage_outputs, features, batch_stats = stages_and_features(model, variables, images,
                                                             rngs=rngs)
  logits = model.apply(variables, features, method=model.head)
  split = lambda x: x.reshape(size, count, *x.shape[1:])
  features, logits = split(features), split(logits)
  stage_outputs = [split(x) for x in stage_outputs]
  return [(features[:, i], logits[:, i], tuple(x[:, i] for x in stage_outputs))
          for i in range(count)], batch_stats


def stage_head_fn(model, variables, position: int, *,
                  rngs: Optional[Mapping[str, jax.Array]] = None):
  """Training-mode head for the position ablation (SD-Dropout Table 12): the stage-`position`
  output `x` -> `head(from_stage(position, x))`, logits [batch, classes].

  The remaining stages' BatchNorm normalises with the statistics of the input it is given and
  its running-average updates are dropped (the clean forward owns them); their dropout draws
  from `rngs`."""

  def head_fn(x):
    features, _ = model.apply(variables, position, x, True, method=model.from_stage,
                              mutable=['batch_stats'], rngs=dict(rngs or {}))
    return model.apply(variables, features, method=model.head)

  return head_fn


def merge_variables(network: Dict[str, Any], own: Mapping[str, Mapping[str, Any]]):
  """The network's {collection: tree} with each method's subtree at `tree[name]`."""
  merged = {c: dict(tree) for c, tree in network.items()}
  for name, variables in own.items():
    for collection, tree in variables.items():
      merged.setdefault(collection, {})[name] = tree
  return merged


def split_variables(variables, names: Sequence[str]):
  """-> (the network's {collection: tree}, {method name: {collection: subtree}}): the entries
  keyed by a method name are that method's own."""
  names = set(names)
  network = {c: {k: v for k, v in tree.items() if k not in names}
             for c, tree in variables.items()}
  own: Dict[str, Dict[str, Any]] = {}
  for collection, tree in variables.items():
    for name in sorted(names & set(tree)):
      own.setdefault(name, {})[collection] = tree[name]
  return network, own
