"""The method contract: `Method`, the `StepContext` it reads, and the keys it draws from.

The whole contract, with a worked example, is in `docs/method_contract.md`. In short: a method
is a small frozen dataclass of hyper-parameters whose `loss(ctx, key)` returns its *unweighted*
term (or None) and metrics; `objective.combine` weighs every term once (paper Eq. 5). Roles are
declared as class attributes (`owns_forward`, `sets_targets`, `keeps_state`), never detected;
`hooks.py` asks the methods through them and names none. Method facts (paper defaults = the
dataclass defaults, `label`, `paper_order`, `compared`, `baseline`, `combined_defaults`) live on
the class; `sdd_jax.methods` reads them for configs and reports.
"""
import dataclasses
from typing import (Any, Callable, ClassVar, Dict, Mapping, Optional, Tuple, Union)

import jax
from jax.sharding import PartitionSpec

from sdd_jax import losses
# model_rngs: the name the method contract gives (docs/method_contract.md: base.model_rngs).
from sdd_jax.train.keys import model_rngs, stream_key  # noqa: F401

# How `combine` scales a (sub-)term before the method's `weight`: a KL between softened
# distributions is multiplied by T**2 (Hinton et al. 2015: its gradients shrink as 1 / T**2);
# anything else (a cross-entropy, a feature distance, an MMD) enters as it is.
SCALED = 'temperature_squared'
UNSCALED = 'unscaled'
# A loss term: one [batch] array (scaled by T**2) or {sub-term name: [batch] or scalar},
# each scaled as the method's `term_scales` declares.
Term = Union[None, jax.Array, Mapping[str, jax.Array]]


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
    variables: the plain network's {'params', 'batch_stats'} (no method's own entries; DML:
      this network's), derived from the parameters being differentiated.
    batch: the global batch (`images` [batch, H, W, C], `labels` [batch], ...).
    features: pooled features of the primary examples, [batch, D] (the anchors for CS-KD,
      the first view for DDGSD, network 0 for DML).
    logits: head(features), [batch, classes].
    stage_outputs: the outputs of the model's stages in the SAME forward that gave
      `features` (`features == from_stage(len, stage_outputs[-1])`), primary examples only;
      with CS-KD / DDGSD they carry the BatchNorm statistics of the joint batch.
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
    method_variables: {method name: {collection: subtree}} of the methods that own variables
      (`init_variables`), being differentiated like the network's.
  """
  model: Any
  variables: Dict[str, Any]
  batch: Dict[str, jax.Array]
  features: jax.Array
  logits: jax.Array
  stage_outputs: Tuple[jax.Array, ...] = ()
  train: bool = True
  outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  ce_logits: Tuple[Tuple[jax.Array, float], ...] = ()
  members: Tuple['StepContext', ...] = ()
  targets: Optional[jax.Array] = None
  step: Any = 0
  run: RunInfo = RunInfo()
  mesh: Any = None
  method_states: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  method_variables: Mapping[str, Any] = dataclasses.field(default_factory=dict)

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
  """Base class: hyper-parameters as fields (their defaults are the paper's), the term as
  `loss`, optional hooks, and the facts and roles as class attributes."""
  weight: float = 1.0
  temperature: float = 1.0

  name: ClassVar[str] = ''  # registry key = module name = config key
  label: ClassVar[str] = ''  # display name in reports ('CS-KD')
  paper_order: ClassVar[Optional[int]] = None  # position in the paper's Table 1 (reports)
  compared: ClassVar[bool] = False  # a self-KD method SD-Dropout is combined with (Table 1)
  baseline: ClassVar[bool] = False  # an ablation baseline, not a self-KD method (Table 11)
  combined_defaults: ClassVar[Mapping[str, Any]] = {}  # paper values beside another method
  has_term: ClassVar[bool] = True  # False: weight / temperature are not config fields
  term_scales: ClassVar[Mapping[str, str]] = {}  # sub-term name -> SCALED | UNSCALED
  needs: ClassVar[Tuple[str, ...]] = ()  # batch keys beyond images / labels
  conflicts: ClassVar[Mapping[str, str]] = {}  # other method name -> why not together
  summary: ClassVar[str] = ''  # what the method changes, for combination errors
  # Roles: at most one configured method owns the forward, at most one sets the targets.
  owns_forward: ClassVar[bool] = False  # implements `forward` (and may `init_network`)
  sets_targets: ClassVar[bool] = False  # implements `targets`
  keeps_state: ClassVar[bool] = False  # implements `init_state` (and `update_state`)
  # `eval_logits` prefixes that run only where a config.evals section names them (`pred`),
  # not beside every accuracy section (SD-Dropout's dropout ensemble: a backbone pass more).
  on_request: ClassVar[Tuple[str, ...]] = ()

  def validate(self) -> None:
    """Raises ValueError('<field>: <what is allowed>, got <value>') on a bad value."""
    if not self.weight >= 0:
      raise ValueError(f'weight: must be >= 0, got {self.weight}')
    if not self.temperature > 0:
      raise ValueError(f'temperature: must be > 0, got {self.temperature}')

  def check_config(self, config) -> None:
    """Raises ValueError('<one line: what the method needs and what to set>') when the rest
    of the config cannot meet this method's needs."""

  def loss(self, ctx: StepContext, key: jax.Array) -> Tuple[Term, Dict[str, jax.Array]]:
    raise NotImplementedError

  # Optional hooks; see docs/method_contract.md. Defaults: the plain network and CE.
  def forward(self, model, variables, batch, *, key: jax.Array,
              rngs: Mapping[str, jax.Array]) -> Tuple[StepContext, Any]:
    """Owner only: -> (context, new batch_stats). `variables`: the network's plus this
    method's own entries; `rngs`: the model's training-mode rngs (`{'dropout': ...}`)."""
    raise NotImplementedError

  def init_network(self, model, key: jax.Array, sample_images: jax.Array):
    """Owner only: the network's variables when they are not one plain network (DML)."""
    return model.init(key, sample_images, train=False)

  def init_variables(self, model, key: jax.Array, variables,
                     sample_images: jax.Array) -> Optional[Dict[str, Any]]:
    """This method's own {collection: subtree} (kept at `params[name]`, `batch_stats[name]`:
    trained, checkpointed, dropped for inference), or None. `variables`: the plain network's
    initial variables; `key`: the init key with the method's number folded in."""
    return None

  def inference_variables(self, variables):
    """Owner only: the plain network's variables from the network's (DML: net0's)."""
    return variables

  def eval_logits(self) -> Dict[str, Callable]:
    """{metric prefix: fn(model, variables, images) -> logits} evaluated besides the plain
    network (with the `accuracy` evaluator, unless listed in `on_request`); `variables` is the
    whole tree for the forward owner's predictors, the plain network's
    (`hooks.inference_variables`) for any other method's."""
    return {}

  def targets(self, ctx: StepContext, key: jax.Array) -> jax.Array:
    raise NotImplementedError

  def init_state(self, run: RunInfo):
    raise NotImplementedError

  def state_partition(self):
    """PartitionSpecs of the state over the mesh (a pytree prefix); default: replicated."""
    return PartitionSpec()

  def update_state(self, ctx: StepContext, state):
    return state


def method_key(key: jax.Array, name: str) -> jax.Array:
  """A method's own key: the step key with its name's number folded in, so adding a method
  to the registry never changes another method's masks. `loss` gets this key."""
  return stream_key(key, name)


def hook_key(key: jax.Array, name: str, hook: str) -> jax.Array:
  """The key of a method's `forward` / `targets`: its method key with the hook's number
  folded in (`loss` gets the method key itself, so its draws are unchanged)."""
  return stream_key(method_key(key, name), hook)


def check_no_term(method: Method, what: str) -> None:
  """For methods without a term: `weight` and `temperature` must stay 1 (they would be
  silently ignored otherwise)."""
  for field in ('weight', 'temperature'):
    value = getattr(method, field)
    if value != 1.0:
      raise ValueError(f'{field}: {method.name} adds no weighted term ({what}); leave it at '
                       f'1.0, got {value}')
