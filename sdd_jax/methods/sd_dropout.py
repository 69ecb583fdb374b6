"""SD-Dropout (Lee et al. 2022, "Self-Knowledge Distillation via Dropout").

Two inverted-dropout masks u, v on the pooled features f give z_u = h(u*f), z_v = h(v*f); the
term is KL(p_u || p_v) + KL(p_v || p_u) at temperature T with gradients through both sides
(paper Eq. 4-5; `direction='forward'` / `'reverse'` are Eqs. 6 / 7). The cross-entropy uses
the un-dropped logits. With `position=k < 4` the masks act on the stage-k feature map of the
step's one forward (`ctx.stage_outputs`: with CS-KD / DDGSD the joint batch's, so the masked
path starts from the same BatchNorm statistics as the clean one) and the remaining stages run
on each masked copy (paper Table 12), their dropout drawing from `base.model_rngs(key)`.
`num_samples=K > 2` averages the term over the K(K-1)/2 pairs of masks (beyond the paper;
K = 2 is exactly the paper's). Combined with another self-KD method, the paper weighs the term
by 0.1 (`combined_defaults`).

Evaluation: the predictor `dropout_ensemble` (`eval_logits`, metric prefix
`sd_dropout/dropout_ensemble`) averages the softmax of `eval_masks` = K dropout masks at `rate`
on the pooled features of one evaluation-mode forward (`dropout_ensemble.py`: fixed masks, so
results reproduce). It runs where a `config.evals` section names it (`pred='dropout_ensemble'`),
not with every accuracy section (`on_request`): it costs one more backbone pass per batch.
"""
import dataclasses
from typing import ClassVar

from sdd_jax import losses
from sdd_jax.methods import base
from sdd_jax.methods import dropout_ensemble
from sdd_jax.methods import forwards

DIRECTIONS = ('both', 'forward', 'reverse')
PREDICTOR = 'dropout_ensemble'


@dataclasses.dataclass(frozen=True)
class SDDropout(base.Method):
  weight: float = 1.0
  temperature: float = 3.0
  rate: float = 0.5
  direction: str = 'both'
  num_samples: int = 2
  position: int = 4
  eval_masks: int = 8  # K of the `dropout_ensemble` predictor (beyond the paper)

  name: ClassVar[str] = 'sd_dropout'
  label: ClassVar[str] = 'SD-Dropout'
  # The one place of the rule: beside another self-KD method the authors weigh SD-Dropout by
  # 0.1 (paper §4.1.2; configs read it through `methods.defaults(name, combined=True)`).
  combined_defaults: ClassVar[dict] = {'weight': 0.1}
  on_request: ClassVar[tuple] = (f'sd_dropout/{PREDICTOR}',)

  def validate(self):
    super().validate()
    if not 0 <= self.rate < 1:
      raise ValueError(f'rate: must be in [0, 1), got {self.rate}')
    if self.direction not in DIRECTIONS:
      raise ValueError(f'direction: must be one of {DIRECTIONS}, got {self.direction!r}')
    if not (isinstance(self.num_samples, int) and self.num_samples >= 2):
      raise ValueError(f'num_samples: must be an integer >= 2, got {self.num_samples}')
    if self.position not in (1, 2, 3, 4):
      raise ValueError(f'position: must be 1, 2, 3 or 4 (stage after which the masks act), '
                       f'got {self.position}')
    if (isinstance(self.eval_masks, bool) or not isinstance(self.eval_masks, int)
        or self.eval_masks < 1):
      raise ValueError(f'eval_masks: the number of dropout masks the {PREDICTOR} predictor '
                       f'averages, an integer >= 1, got {self.eval_masks!r}')

  def check_config(self, config):
    for key in config.get('evals') or {}:
      section = config.evals[key]
      if self.position != 4 and hasattr(section, 'get') and section.get('pred') == PREDICTOR:
        raise ValueError(f"config.evals.{key}.pred='{PREDICTOR}' masks the pooled features, "
                         f"but position={self.position} trains the masks on stage "
                         f"{self.position}'s output; use position 4 or another pred")

  def eval_logits(self):
    return {f'sd_dropout/{PREDICTOR}': dropout_ensemble.make_apply_fn(self.rate,
                                                                       self.eval_masks)}

  def loss(self, ctx, key):
    if self.position == 4:
      inputs, head_fn = ctx.features, ctx.head_fn()
    else:
      if len(ctx.stage_outputs) < self.position:
        raise ValueError(f'sd_dropout: position {self.position} needs the stage outputs of the '
                         f'forward, got {len(ctx.stage_outputs)}; build the context with '
                         'methods.forwards')
      inputs = ctx.stage_outputs[self.position - 1]
      head_fn = forwards.stage_head_fn(ctx.model, ctx.variables, self.position,
                                       rngs=base.model_rngs(key))
    term = losses.sd_dropout(head_fn, inputs, key, rate=self.rate, temperature=self.temperature,
                             direction=self.direction, num_samples=self.num_samples)
    return term, {}
