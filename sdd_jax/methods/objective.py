"""The total loss (paper Eq. 5): the cross-entropy and every configured method's term, weighed
once, here and nowhere else.

`combine` adds, for each method, `weight * sum_s scale_s * mean(term_s)` over the sub-terms `s`
its `loss` returns: `scale_s = T**2` for a `base.SCALED` sub-term (a KL at temperature T) and
1 for a `base.UNSCALED` one (a CE, a feature distance, an MMD), as the method's `term_scales`
declares. A plain `[batch]` term is one SCALED sub-term (`weight * T**2 * mean(term)`).
What `loss` returns is checked against the contract first (`contract.py`: one line naming the
method and the rule).
"""
from typing import Dict, Mapping, Sequence, Tuple

import jax
import jax.numpy as jnp

from sdd_jax.metrics import diagnostics
from sdd_jax.methods import contract
from sdd_jax.methods.base import SCALED, UNSCALED, Method, StepContext, method_key


def base_loss(ctx: StepContext) -> jax.Array:
  """[batch]: `sum_i weight_i * CE(logits_i, targets)` over `ctx.ce_logits` (default: CE of
  `ctx.logits`); the targets are `ctx.targets` or the one-hot labels."""
  if not ctx.ce_logits:
    return ctx.cross_entropy(ctx.logits)
  total = 0.0
  for logits, weight in ctx.ce_logits:
    total = total + weight * ctx.cross_entropy(logits)
  return total


def _scaled_means(method: Method, term) -> Dict[str, Tuple[jax.Array, float]]:
  """{sub-term: (batch mean, scale)} of what `loss` returned; {} for no term."""
  if term is None:
    return {}
  squared = method.temperature ** 2
  if not isinstance(term, Mapping):
    return {'': (jnp.mean(term), squared)}
  undeclared = sorted(set(term) - set(method.term_scales))
  if undeclared:
    raise contract.MethodContractError(
        f'{method.name}.loss returned sub-terms {undeclared} that '
        f'{type(method).__name__}.term_scales does not declare; declare each as base.SCALED '
        f'or base.UNSCALED ({contract.DOC})')
  scales = {SCALED: squared, UNSCALED: 1.0}
  return {name: (jnp.mean(value), scales[method.term_scales[name]])
          for name, value in term.items()}


def _loss(method: Method, ctx, key, batch_size):
  """`method.loss` on the declared view of `ctx`, its output checked against the contract."""
  output = method.loss(contract.declared_context(method, ctx), key)
  contract.check_loss(method, output, batch_size)
  return output


def _method_terms(method: Method, ctx, key, batch_size):
  """The method's sub-term means on `ctx`, or averaged over `ctx.members` (each with its own
  key: member 0 the method key, member i > 0 the method key with i folded in) when the method
  does not own the forward and there are several networks."""
  members = getattr(ctx, 'members', ())
  if not members or method.owns_forward:
    term, extra = _loss(method, ctx, key, batch_size)
    return _scaled_means(method, term), extra
  results = [_loss(method, member, key if i == 0 else jax.random.fold_in(key, i), batch_size)
             for i, member in enumerate(members)]
  means = [_scaled_means(method, term) for term, _ in results]
  averaged = {name: (sum(m[name][0] for m in means) / len(means), scale)
              for name, (_, scale) in means[0].items()}
  extra = jax.tree.map(lambda *xs: sum(xs) / len(xs), *[e for _, e in results])
  return averaged, extra


def combine(methods: Sequence[Method], ctx: StepContext, key: jax.Array,
            base_loss: jax.Array) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Total loss `mean(base_loss) + sum_m weight_m * sum_s scale_s * mean(term_m,s)` (Eq. 5).

  Args:
    methods: the configured methods.
    ctx: the step context.
    key: the step key; each method's `loss` gets `method_key(key, method.name)`.
    base_loss: the per-example cross-entropy, [batch].

  Returns:
    The scalar loss and metrics `train/loss`, `train/loss_ce`, `train/loss_<name>` (the
    unweighted term in units of T**2: `weight * T**2 * train/loss_<name>` is the method's
    contribution; absent for methods without a term), `train/share_ce` and
    `train/share_<name>` (each contribution over the total: `diagnostics.term_shares`) and
    whatever each method reports.
  """
  total = jnp.mean(base_loss)
  batch_size = jnp.shape(base_loss)[0] if jnp.ndim(base_loss) else None
  metrics = {'train/loss_ce': total}
  weighted = {'ce': total}
  for method in methods:
    terms, extra = _method_terms(method, ctx, method_key(key, method.name), batch_size)
    metrics.update(extra)
    if not terms:
      continue
    weighted[method.name] = sum(method.weight * scale * mean for mean, scale in terms.values())
    total = total + weighted[method.name]
    metrics[f'train/loss_{method.name}'] = sum(scale / method.temperature ** 2 * mean
                                               for mean, scale in terms.values())
  metrics['train/loss'] = total
  metrics.update(diagnostics.term_shares(weighted, total))
  return total, metrics
