"""The method contract, the shared forward passes, and `combine` (paper Eq. 5).

A method is a small frozen dataclass of hyper-parameters. `loss(ctx, key)` returns the
*unweighted* per-example term `[batch]` (or None: no term) and a dict of scalar metrics;
`combine` adds `weight * temperature**2 * mean(term)` for every configured method on top of
the cross-entropy, once, for all. `trainer.py` and `step.py` never name a method: they call
`combine` and the functions of `hooks.py`, which ask each method through optional hooks.

Hooks (override only what the method changes; the defaults are plain cross-entropy training):

- `needs` (class attribute): batch keys beyond `images` / `labels` (`index`, `second_view`,
  `pair_images`); the trainer opens the input pipeline from the union of all needs
  (`data.loader_options`).
- `forward(model, variables, batch)`: what goes through the network, returning the
  `StepContext` and the new `batch_stats`. Default `plain_forward`: `head(features(images))`.
  At most one configured method may override it (CS-KD, DDGSD, BYOT, DML).
- `init_variables(model, key, sample_images)`: the parameter tree when a method owns more than
  the plain network (BYOT's auxiliary heads, DML's second network); `inference_variables`
  maps it back to the plain network that evaluation and inference use, and `eval_logits`
  names extra predictors for evaluation (DML's net1 and ensemble).
- `targets(ctx)`: distributions `[batch, classes]` that replace the one-hot labels in the
  cross-entropy (label smoothing, PS-KD). At most one configured method may override it.
- `init_state(run)` / `state_partition()` / `update_state(ctx, state)`: a method's own state,
  kept in `TrainState.method_states[name]`, checkpointed with it, updated inside the jitted
  step (PS-KD's prediction table); `state_partition` gives its PartitionSpecs over the mesh.
- `check_config(config)`: needs of the method that the rest of the config must meet.
- `conflicts` (class attribute): {other method: why they cannot be combined}.
"""
import dataclasses
import zlib
from typing import (Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence, Tuple)

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from sdd_jax import diagnostics
from sdd_jax import losses


@dataclasses.dataclass(frozen=True)
class RunInfo:
  """Static facts about the run that some methods need; the trainer fills them in.

  Attributes:
    num_examples: training examples (rows of a per-example table).
    num_classes: classes of the data.
    steps_per_epoch: optimizer steps per epoch (epoch = step // steps_per_epoch).
    num_epochs: epochs of the run.
    num_devices: devices of the mesh (sharded state is padded to split over them).
  """
  num_examples: int = 0
  num_classes: int = 0
  steps_per_epoch: int = 0
  num_epochs: int = 0
  num_devices: int = 1


@dataclasses.dataclass(frozen=True)
class StepContext:
  """What a method may look at inside the (traced) train step.

  Attributes:
    model: the flax module (features / head / stages / from_stage).
    variables: the plain network's {'params', 'batch_stats'}, derived from the parameters
      being differentiated (BYOT: without the auxiliary heads; DML: this network's).
    batch: the global batch (`images` [batch, H, W, C], `labels` [batch], ...).
    features: pooled features of the primary examples, [batch, D] (the anchors for CS-KD,
      the first view for DDGSD, network 0 for DML).
    logits: head(features), [batch, classes].
    train: True inside the train step.
    outputs: what a `forward` hook adds (e.g. `pair_logits`, `second_features`,
      `aux_logits`).
    ce_logits: ((logits, weight), ...) that the cross-entropy is taken of; () means
      ((logits, 1.0),). DDGSD: both views with weight 1; DML: both networks with weight 1/2.
    members: one context per network when there are several (DML); methods that do not own
      the forward (SD-Dropout) then run once per member and their terms are averaged.
    targets: [batch, classes] distributions replacing the one-hot labels, or None.
    step: the optimizer step (traced int32 scalar).
    run: static facts of the run.
    mesh: the device mesh (None outside the train step).
    method_states: every method's state at the start of the step, by method name.
  """
  model: Any
  variables: Dict[str, Any]
  batch: Dict[str, jax.Array]
  features: jax.Array
  logits: jax.Array
  train: bool = True
  outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  ce_logits: Tuple[Tuple[jax.Array, float], ...] = ()
  members: Tuple['StepContext', ...] = ()
  targets: Optional[jax.Array] = None
  step: Any = 0
  run: RunInfo = RunInfo()
  mesh: Any = None
  method_states: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def head_fn(self) -> Callable[[jax.Array], jax.Array]:
    """The model's own head with the current parameters: features [batch, D] -> logits."""
    return lambda x: self.model.apply(self.variables, x, method=self.model.head)

  def cross_entropy(self, logits: jax.Array) -> jax.Array:
    """[batch]: CE of `logits` against `targets` when a method set them, else the labels."""
    if self.targets is None:
      return losses.cross_entropy(logits, self.batch['labels'])
    return losses.soft_cross_entropy(logits, self.targets)


@dataclasses.dataclass(frozen=True)
class Method:
  """Base class: hyper-parameters as fields, the term as `loss`, optional hooks."""
  weight: float = 1.0
  temperature: float = 1.0

  name: ClassVar[str] = ''
  needs: ClassVar[Tuple[str, ...]] = ()  # batch keys beyond images / labels
  conflicts: ClassVar[Mapping[str, str]] = {}  # other method name -> why not together
  summary: ClassVar[str] = ''  # what the method changes, for combination errors

  def validate(self) -> None:
    """Raises ValueError('<field>: <what is allowed>, got <value>') on a bad value."""
    if not self.weight >= 0:
      raise ValueError(f'weight: must be >= 0, got {self.weight}')
    if not self.temperature > 0:
      raise ValueError(f'temperature: must be > 0, got {self.temperature}')

  def check_config(self, config) -> None:
    """Raises ValueError('<one line: what the method needs and what to set>') when the rest
    of the config cannot meet this method's needs."""

  def loss(self, ctx: StepContext,
           key: jax.Array) -> Tuple[Optional[jax.Array], Dict[str, jax.Array]]:
    raise NotImplementedError

  # Optional hooks; see the module docstring. Defaults: the plain network and CE.
  def forward(self, model, variables, batch) -> Tuple[StepContext, Any]:
    raise NotImplementedError

  def init_variables(self, model, key: jax.Array, sample_images: jax.Array):
    return model.init(key, sample_images, train=False)

  def inference_variables(self, variables):
    return variables

  def eval_logits(self) -> Dict[str, Callable]:
    """{metric prefix: fn(model, variables, images) -> logits} evaluated besides the plain
    network (with the `accuracy` evaluator); `variables` is the whole tree."""
    return {}

  def targets(self, ctx: StepContext) -> jax.Array:
    raise NotImplementedError

  def init_state(self, run: RunInfo):
    raise NotImplementedError

  def state_partition(self):
    """PartitionSpecs of the state over the mesh (a pytree prefix); default: replicated."""
    return PartitionSpec()

  def update_state(self, ctx: StepContext, state):
    return state


def overrides(method: Method, hook: str) -> bool:
  """True when `method`'s class overrides the base hook `hook`."""
  return getattr(type(method), hook) is not getattr(Method, hook)


def method_key(key: jax.Array, name: str) -> jax.Array:
  """A method's own key: the step key with a stable number of the method's name folded in,
  so adding a method to the registry never changes another method's masks."""
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


# ---------------------------------------------------------------------------------------------
# The forward passes methods share, and the loss (the dispatch over a method list:
# `hooks.py`).

def plain_forward(model, variables, batch) -> Tuple[StepContext, Any]:
  """`logits = head(features(images))` in training mode; -> (context, new batch_stats)."""
  features, updates = model.apply(variables, batch['images'], train=True,
                                  method=model.features, mutable=['batch_stats'])
  logits = model.apply(variables, features, method=model.head)
  return StepContext(model=model, variables=variables, batch=batch, features=features,
                     logits=logits), updates['batch_stats']


def joint_forward(model, variables, arrays: Sequence[jax.Array]):
  """One training-mode forward of `len(arrays)` image batches `[B, H, W, C]` as ONE batch (one
  set of BatchNorm statistics over all of them, running averages updated once).

  The batches are interleaved example by example (`stack(axis=1)` then reshape), so each
  device's rows of the joint batch are its own rows of every input: no data need move between
  devices, and the global BatchNorm statistics are those of the concatenation.

  Returns:
    ([(features [B, D], logits [B, classes]) per input], new batch_stats).
  """
  count, size = len(arrays), arrays[0].shape[0]
  images = jnp.stack(arrays, axis=1).reshape(count * size, *arrays[0].shape[1:])
  features, updates = model.apply(variables, images, train=True, method=model.features,
                                  mutable=['batch_stats'])
  logits = model.apply(variables, features, method=model.head)
  features = features.reshape(size, count, -1)
  logits = logits.reshape(size, count, -1)
  return [(features[:, i], logits[:, i]) for i in range(count)], updates['batch_stats']


def base_loss(ctx: StepContext) -> jax.Array:
  """[batch]: `sum_i weight_i * CE(logits_i, targets)` over `ctx.ce_logits` (default: CE of
  `ctx.logits`); the targets are `ctx.targets` or the one-hot labels."""
  if not ctx.ce_logits:
    return ctx.cross_entropy(ctx.logits)
  total = 0.0
  for logits, weight in ctx.ce_logits:
    total = total + weight * ctx.cross_entropy(logits)
  return total


def _method_loss(method: Method, ctx, key):
  """The method's term on `ctx`, or averaged over `ctx.members` (each with its own key:
  member 0 the method key, member i > 0 the method key with i folded in) when the method
  does not own the forward and there are several networks."""
  members = getattr(ctx, 'members', ())
  if not members or overrides(method, 'forward'):
    return method.loss(ctx, key)
  results = [method.loss(member, key if i == 0 else jax.random.fold_in(key, i))
             for i, member in enumerate(members)]
  if results[0][0] is None:
    return results[0]
  term = sum(jnp.mean(t) for t, _ in results) / len(results)
  extra = jax.tree.map(lambda *xs: sum(xs) / len(xs), *[e for _, e in results])
  return term, extra


def combine(methods: Sequence[Method], ctx: StepContext, key: jax.Array,
            base_loss: jax.Array) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Total loss `mean(base_loss) + sum_m weight_m * T_m**2 * mean(term_m)` (paper Eq. 5).

  Args:
    methods: the configured methods.
    ctx: the step context.
    key: the step key; each method gets `method_key(key, method.name)`.
    base_loss: the per-example cross-entropy, [batch].

  Returns:
    The scalar loss and metrics `train/loss`, `train/loss_ce`, `train/loss_<name>` (unweighted
    term; absent for methods without a term), `train/share_ce` and `train/share_<name>` (each
    weighted term over the total: `diagnostics.term_shares`) and whatever each method reports.
  """
  total = jnp.mean(base_loss)
  metrics = {'train/loss_ce': total}
  weighted = {'ce': total}
  for method in methods:
    term, extra = _method_loss(method, ctx, method_key(key, method.name))
    metrics.update(extra)
    if term is None:
      continue
    term = jnp.mean(term)
    weighted[method.name] = method.weight * method.temperature ** 2 * term
    total = total + weighted[method.name]
    metrics[f'train/loss_{method.name}'] = term
  metrics['train/loss'] = total
  metrics.update(diagnostics.term_shares(weighted, total))
  return total, metrics


def check_no_term(method: Method, what: str) -> None:
  """For methods without a term: `weight` and `temperature` must stay 1 (they would be
  silently ignored otherwise)."""
  for field in ('weight', 'temperature'):
    value = getattr(method, field)
    if value != 1.0:
      raise ValueError(f'{field}: {method.name} adds no weighted term ({what}); leave it at '
                       f'1.0, got {value}')
