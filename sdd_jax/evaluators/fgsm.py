"""`fgsm`: one-step L∞ attacks (Goodfellow et al. 2015) in three variants (docs/evaluation.md §3).

The eval batches hold NORMALISED images x_n = (x − μ)/σ (x = uint8/255 in [0, 1]). Every variant
is the same core step on x_n, x_adv = clip(x_n + step_c · sign(g), lower_c, upper_c), with
g = ∇_{x_n} Σ_i CE(f(x_n)_i, label_i) (the sum, §0.5; sign(g) is the same w.r.t. x and x_n
since σ_c > 0) and sign(0) = 0 (`np.sign`, as ART and torchattacks):

| variant | labels | step_c on x_n (pixels: step_c·σ_c) | clip of x_n to |
|---|---|---|---|
| `paper` (headline) | clean predictions | ε | [0, 1] in normalised units (the clamp) |
| `pix` (textbook) | true labels | ε / σ_c (pixel ε) | [−μ_c/σ_c, (1−μ_c)/σ_c] = pixels [0, 1] |
| `norm` | clean predictions | ε (pixel ε·σ_c) | [−μ_c/σ_c, (1−μ_c)/σ_c] = pixels [0, 1] |

`paper` is the SD-Dropout authors' protocol (ART `FastGradientMethod(eps=0.2)` on the normalised
tensor, `clip_values=(0, 1)`, `generate(x)` without labels); its ε = 0 row is the clamp alone.
Accuracy is always against the true labels, over every example of the eval split.

Keys (top-1 %): `fgsm/clean`, `fgsm/<variant>_<ε>` with ε printed `%.4g` (e.g. `fgsm/paper_0.2`,
`fgsm/paper_0` (clamp only), `fgsm/pix_0.03137` (8/255), `fgsm/pix_0.2`, `fgsm/norm_0.2`),
`fgsm/count`, and `fgsm/nonfinite`: examples whose clean or any attacked logits held a NaN or
±inf (each such prediction counts as wrong; per attack in results.json).
`<workdir>/evals/fgsm/results.json` holds every ε exactly, the per-channel steps
in pixel and normalised units, and the normalisation constants.
"""
import dataclasses
import functools
from typing import Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from sdd_jax.metrics import classification as metrics
from sdd_jax.evaluators import base
from sdd_jax.evaluators import results as results_lib

VARIANTS = ('paper', 'pix', 'norm')
DESCRIPTIONS = {
    'paper': ('FGSM-paper (headline, the SD-Dropout authors\' protocol): ART FGM on the '
              'normalised tensor, labels = clean predictions, step ε in normalised units, then '
              'the normalised tensor clipped to [0, 1]; ε = 0 is the clamp alone'),
    'pix': ('FGSM-pix (textbook): step ε in [0, 1] pixel units (ε/σ_c on the normalised '
            'tensor), true labels, pixels clipped to [0, 1]'),
    'norm': ('FGSM-norm: step ε in normalised units (pixel ε·σ_c), labels = clean predictions, '
             'pixels clipped to [0, 1] (FGSM-paper without the clamp)'),
}
LABELS = {'paper': 'predicted', 'pix': 'true', 'norm': 'predicted'}


@dataclasses.dataclass(frozen=True)
class Attack:
  """One variant at one ε (ε in the units of the variant's table row)."""
  variant: str
  epsilon: float

  @property
  def key(self) -> str:
    return f'fgsm/{self.variant}_{self.epsilon:.4g}'

  @property
  def labels(self) -> str:
    """'true' or 'predicted' (the clean argmax, ART's `generate(x)` without y)."""
    return LABELS[self.variant]

  def step(self, std: Sequence[float]) -> np.ndarray:
    """The per-channel step on the normalised tensor, `[C]` float64."""
    std = np.asarray(std, np.float64)
    if self.variant == 'pix':
      return self.epsilon / std
    return np.full_like(std, self.epsilon)

  def bounds(self, mean: Sequence[float], std: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """(lower, upper) `[C]` of the clip, in normalised units."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if self.variant == 'paper':
      return np.zeros_like(mean), np.ones_like(mean)
    return (0 - mean) / std, (1 - mean) / std


def step_and_clip(images: jax.Array, grads: jax.Array, step: Sequence[float],
                  lower: Sequence[float], upper: Sequence[float]) -> jax.Array:
  """The core FGSM step: clip(images + step · sign(grads), lower, upper), jitted.

  Args:
    images: `[batch, H, W, C]` normalised images.
    grads: `[batch, H, W, C]` loss gradient w.r.t. `images`; sign(0) = 0.
    step, lower, upper: `[C]` per channel, in normalised units; compile-time constants (no
      host-to-device copy: the training loop's transfer guard allows none).
  """
  constants = tuple(tuple(float(x) for x in np.ravel(v)) for v in (step, lower, upper))
  return _step_and_clip(images, grads, *constants)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _step_and_clip(images, grads, step, lower, upper):
  dtype = images.dtype
  step, lower, upper = (jnp.asarray(v, dtype) for v in (step, lower, upper))
  return jnp.clip(images + step * jnp.sign(grads).astype(dtype), lower, upper)


def adversarial_images(attack: Attack, images: jax.Array, grads: jax.Array,
                       mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """`images` (normalised) attacked by `attack`, given the gradient for the attack's labels."""
  lower, upper = attack.bounds(mean, std)
  return step_and_clip(images, grads, attack.step(std), lower, upper)


@jax.jit
def _correct_and_predicted(logits, labels, mask):
  """(masked correct count, predicted labels `[batch]`, non-finite rows `[batch]` bool)."""
  correct = jnp.sum(metrics.topk_correct(logits, labels, 1) * mask.astype(jnp.float32))
  bad = ~metrics.finite_rows(logits) & mask.astype(bool)
  return correct, jnp.argmax(logits, axis=-1).astype(labels.dtype), bad


def create_attacks(section) -> Tuple[Attack, ...]:
  """The attacks of a config section, in the order `paper`, `pix`, `norm`."""
  lists = {'paper': section['paper_epsilons'], 'pix': section['epsilons'],
           'norm': section['norm_epsilons']}
  attacks = []
  for variant in VARIANTS:
    for epsilon in lists[variant]:
      if not float(epsilon) >= 0:
        raise ValueError(f'config.evals.fgsm: ε must be >= 0, got {epsilon!r} ({variant})')
      attacks.append(Attack(variant, float(epsilon)))
  return tuple(attacks)


def attack_sums(ctx, predict, attacks: Sequence[Attack], source=None) -> Dict[str, float]:
  """Correct counts (against the true labels) of the clean and every attacked image, summed
  over every batch of `source`: {'count', 'clean', attack.key: ...}, and the examples with
  non-finite logits: 'nonfinite' (clean or any attack), 'nonfinite/clean', 'nonfinite/<key>'."""
  mean, std = tuple(ctx.data_config.mean), tuple(ctx.data_config.std)
  needs = {attack.labels for attack in attacks}
  keys = ['clean'] + [attack.key for attack in attacks]
  totals = {'count': 0.0, 'nonfinite': 0.0, **{k: 0.0 for k in keys},
            **{f'nonfinite/{k}': 0.0 for k in keys}}
  for batch in ctx.batches(source):
    images, labels, mask = batch['images'], batch['labels'], batch['mask']
    correct, predicted, bad = _correct_and_predicted(predict.logits_fn(images), labels, mask)
    grads = {}
    if 'true' in needs:
      grads['true'] = predict.input_grad_fn(images, labels, 1.0)
    if 'predicted' in needs:
      grads['predicted'] = predict.input_grad_fn(images, predicted, 1.0)
    sums = {'count': jnp.sum(mask), 'clean': correct, 'nonfinite/clean': jnp.sum(bad)}
    any_bad = bad
    for attack in attacks:
      adversarial = adversarial_images(attack, images, grads[attack.labels], mean, std)
      sums[attack.key], _, bad = _correct_and_predicted(predict.logits_fn(adversarial), labels,
                                                        mask)
      sums[f'nonfinite/{attack.key}'] = jnp.sum(bad)
      any_bad = any_bad | bad
    sums['nonfinite'] = jnp.sum(any_bad)
    for key, value in jax.device_get(sums).items():
      totals[key] += float(value)
  return totals


class Fgsm(base.Evaluator):
  """Section: `epsilons` (FGSM-pix, pixel units), `norm_epsilons`, `paper_epsilons`
  (normalised units; 0 = the clamp alone); an empty tuple leaves a variant out."""
  name = 'fgsm'
  defaults = {'every_epochs': 0, 'epsilons': (8 / 255, 0.2), 'norm_epsilons': (0.2,),
              'paper_epsilons': (0.0, 0.2)}

  @classmethod
  def check_section(cls, section):
    create_attacks(section)

  def __call__(self, ctx, predict):
    if predict.input_grad_fn is None:
      raise ValueError('fgsm needs Predictors.input_grad_fn (the input gradient)')
    attacks = create_attacks(self.section)
    totals = attack_sums(ctx, predict, attacks)
    count = totals['count']
    out = {'fgsm/clean': 100 * totals['clean'] / count}
    out.update({attack.key: 100 * totals[attack.key] / count for attack in attacks})
    out['fgsm/count'] = count
    out['fgsm/nonfinite'] = totals['nonfinite']
    mean, std = ctx.data_config.mean, ctx.data_config.std
    details, rows = [], []
    for attack in attacks:
      step = attack.step(std)
      lower, upper = attack.bounds(mean, std)
      pixel_step = step * np.asarray(std, np.float64)
      details.append({'key': attack.key, 'variant': attack.variant, 'epsilon': attack.epsilon,
                      'labels': attack.labels, 'step_normalised': step,
                      'step_pixels': pixel_step, 'clip_normalised': [lower, upper],
                      'top1': out[attack.key],
                      'nonfinite': totals[f'nonfinite/{attack.key}']})
      clip = ('normalised [0, 1]' if attack.variant == 'paper' else 'pixels [0, 1]')
      rows.append((attack.key, attack.variant, f'{attack.epsilon:.6g}', attack.labels,
                   ', '.join(f'{255 * p:.2f}' for p in pixel_step), clip, out[attack.key]))
    label = ('One-step L∞ FGSM, eval mode, gradient of the summed CE; accuracy against the true '
             'labels. ' + '; '.join(f'`{v}`: {DESCRIPTIONS[v]}' for v in VARIANTS) + '.')
    results_lib.write_results(
        ctx.workdir, self.key, data_config=ctx.data_config, metrics=out, label=label,
        details={'attacks': details, 'clean_top1': out['fgsm/clean'], 'n': int(count),
                 'clean_nonfinite': totals['nonfinite/clean']},
        tables=[results_lib.table(
            'Top-1 accuracy under attack (clean: {:.2f}%, n = {})'.format(out['fgsm/clean'],
                                                                         int(count)),
            ('key', 'variant', 'ε', 'labels', 'pixel step ×255 per channel', 'clip', 'top-1 %'),
            rows)])
    return out
