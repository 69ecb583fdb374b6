"""Forward-versus-reverse KL probe (SD-Dropout, Lee et al. 2022, §3.3 and §4.6.1).

Two dropout copies of the pooled features, `x_u = u ⊙ f`, `x_v = v ⊙ f`, give through the head
`p = softmax(h_θ(x_u) / T)` and `q = softmax(h_θ(x_v) / T)`, `[batch, classes]`. θ is the
last Dense layer of the head (`params['classifier']['output']`: kernel and bias, both).

Table 8 (Assumptions 1 and 2), per (example, class) pair `(b, i)`:
  - `G^p_i = ‖∇_θ p_i‖₁`, `G^q_i = ‖∇_θ q_i‖₁`: the paper writes `|∇_θ p(x)_i|` for a vector
    and uses `‖·‖₁` in its Eq. 20, so we take the L1 norm over all of θ (kernel and bias).
    For a linear head this is `(2/T) p_i (1 − p_i) (‖x_u‖₁ + 1)`; we compute it with `jacrev`
    so that a head with hidden layers works too.
  - Assumption 1 holds iff `(p_i/q_i − 1)(G^p_i/G^q_i − 1) > 0` (strict: a tie does not hold).
    `assumption1_fraction` is the fraction of (example, class) pairs where it holds
    ("the probability that Assumption 1 holds").
  - Orientation: the paper's proof takes `p_i ≥ q_i` without loss of generality. We swap p and
    q per pair so that `r = log(p_i / q_i) ≥ 0` and `ρ = G^{larger}_i / G^{smaller}_i`
    (the gradient norm of the copy with the larger probability over the other's).
    `mean_abs_r` is the mean of `|r| = |log p_i − log q_i|` (from log-softmax, stable).
  - `r1 = |log ρ + log(log(ρ + e − 1))|` (Assumption 2), averaged over the same pairs. The
    paper states Assumption 2 for ρ > 1; the formula is finite for every ρ > 0 and we average
    over all pairs, not only those where Assumption 1 holds (Table 8 does not say).
  - Pairs whose gradient norms underflow to 0 (a saturated softmax) are left out of all three
    means; the means are over the rest.

Figure 4: the gradients with respect to θ of the batch-mean forward term (Eq. 6,
`KL(sg p ‖ q) + KL(sg q ‖ p)`, `losses.symmetric_kl(..., 'forward')`) and of the reverse term
(Eq. 7, `KL(p ‖ sg q) + KL(q ‖ sg p)`, `'reverse'`), not multiplied by `λ · T²`; kernel and bias
flattened into one vector; their cosine similarity and their two L1 norms. In logit space
(used by the NumPy reference in the tests):
  forward:  ∂/∂z_u = (p − q) / T,                        ∂/∂z_v = (q − p) / T
  reverse:  ∂/∂z_u = p ⊙ (log p − log q − KL(p‖q)) / T,  ∂/∂z_v = q ⊙ (log q − log p − KL(q‖p)) / T

Everything here is pure and jit-able; `rate` and `temperature` are static.
"""
from typing import Callable, Dict

import jax
import jax.numpy as jnp

from sdd_jax import losses

# `apply_fn(head_params, inputs [batch, D]) -> logits [batch, classes]`
ApplyFn = Callable[[dict, jax.Array], jax.Array]


def prob_gradient_l1(apply_fn: ApplyFn, head_params, inputs: jax.Array,
                     temperature: float) -> jax.Array:
  """`‖∇_θ softmax(h_θ(x_b) / T)_i‖₁` for every example b and class i: `[batch, classes]`.

  The Jacobian is taken one example at a time (`lax.map`), `[classes, |θ|]` in memory.
  """
  def one(x):
    def probs(params):
      return jax.nn.softmax(apply_fn(params, x[None])[0].astype(jnp.float32) / temperature)
    jac = jax.jacrev(probs)(head_params)
    return sum(jnp.sum(jnp.abs(j).reshape(j.shape[0], -1), axis=1)
               for j in jax.tree_util.tree_leaves(jac))

  return jax.lax.map(one, inputs)


def assumption_statistics(logits_u: jax.Array, logits_v: jax.Array, grad_l1_u: jax.Array,
                          grad_l1_v: jax.Array, temperature: float) -> Dict[str, jax.Array]:
  """Table 8 from the two copies' logits and gradient norms (see the module docstring).

  Args:
    logits_u, logits_v: `[batch, classes]`, giving p and q at temperature T.
    grad_l1_u, grad_l1_v: `[batch, classes]`, `‖∇_θ p_i‖₁` and `‖∇_θ q_i‖₁`.
  Returns:
    `assumption1_fraction`, `mean_abs_r`, `r1`: float32 scalars.
  """
  log_p = jax.nn.log_softmax(logits_u.astype(jnp.float32) / temperature, axis=-1)
  log_q = jax.nn.log_softmax(logits_v.astype(jnp.float32) / temperature, axis=-1)
  r = log_p - log_q                                   # log(p_i / q_i)
  valid = (grad_l1_u > 0) & (grad_l1_v > 0)
  safe_u = jnp.where(valid, grad_l1_u, 1.0)
  safe_v = jnp.where(valid, grad_l1_v, 1.0)
  log_ratio = jnp.log(safe_u) - jnp.log(safe_v)       # log(G^p / G^q)
  holds = (r * log_ratio > 0) & valid                 # sign(p/q − 1) == sign(G^p/G^q − 1) ≠ 0
  log_rho = jnp.where(r >= 0, log_ratio, -log_ratio)  # oriented: larger-probability copy on top
  rho = jnp.exp(log_rho)
  r1 = jnp.abs(log_rho + jnp.log(jnp.log(rho + jnp.e - 1)))
  count = jnp.maximum(jnp.sum(valid), 1)
  mean = lambda x: jnp.sum(jnp.where(valid, x, 0.0)) / count
  return {'assumption1_fraction': mean(holds.astype(jnp.float32)),
          'mean_abs_r': mean(jnp.abs(r)),
          'r1': mean(r1)}


def kl_gradients(apply_fn: ApplyFn, head_params, inputs_u: jax.Array, inputs_v: jax.Array,
                 temperature: float):
  """Gradients w.r.t. `head_params` of the batch-mean forward (Eq. 6) and reverse (Eq. 7) terms.

  Returns:
    `(grad_forward, grad_reverse)`, each a pytree shaped like `head_params`.
  """
  def term(params, direction):
    z_u = apply_fn(params, inputs_u)
    z_v = apply_fn(params, inputs_v)
    return jnp.mean(losses.symmetric_kl(z_u, z_v, temperature, direction))

  return (jax.grad(term)(head_params, 'forward'), jax.grad(term)(head_params, 'reverse'))


def gradient_statistics(grad_forward, grad_reverse) -> Dict[str, jax.Array]:
  """Figure 4: cosine similarity and L1 norms of the two gradients, each flattened to a vector."""
  flat = lambda tree: jnp.concatenate([jnp.ravel(x).astype(jnp.float32)
                                       for x in jax.tree_util.tree_leaves(tree)])
  g_fw, g_rv = flat(grad_forward), flat(grad_reverse)
  denom = jnp.linalg.norm(g_fw) * jnp.linalg.norm(g_rv)
  cosine = jnp.where(denom > 0, jnp.dot(g_fw, g_rv) / jnp.where(denom > 0, denom, 1.0), 0.0)
  return {'grad_cosine': cosine,
          'grad_l1_forward': jnp.sum(jnp.abs(g_fw)),
          'grad_l1_reverse': jnp.sum(jnp.abs(g_rv))}


def head_probe(apply_fn: ApplyFn, head_params, features: jax.Array, masks: jax.Array, *,
               temperature: float) -> Dict[str, jax.Array]:
  """All six statistics for a head, features `[batch, D]` and masks `[2, batch, D]`.

  `masks` as `losses.dropout_masks(key, features.shape, rate, 2)`: `x_u = masks[0] ⊙ f`,
  `x_v = masks[1] ⊙ f`. Returns un-prefixed keys (see `probe_metrics`).
  """
  losses._check_temperature(temperature)
  features = features.astype(jnp.float32)
  inputs_u, inputs_v = masks[0] * features, masks[1] * features
  logits_u = apply_fn(head_params, inputs_u)
  logits_v = apply_fn(head_params, inputs_v)
  stats = assumption_statistics(
      logits_u, logits_v,
      prob_gradient_l1(apply_fn, head_params, inputs_u, temperature),
      prob_gradient_l1(apply_fn, head_params, inputs_v, temperature), temperature)
  stats.update(gradient_statistics(
      *kl_gradients(apply_fn, head_params, inputs_u, inputs_v, temperature)))
  return stats


def make_head_apply_fn(model, variables) -> ApplyFn:
  """`(output_params, inputs) -> model.head(inputs)` with `params['classifier']['output']`
  replaced by `output_params` (the rest of the head, if any, held fixed)."""
  def apply_fn(output_params, inputs):
    params = dict(variables['params'])
    classifier = dict(params['classifier'])
    classifier['output'] = output_params
    params['classifier'] = classifier
    return model.apply({**variables, 'params': params}, inputs, method=model.head)

  return apply_fn


def probe_metrics(model, variables, images: jax.Array, key: jax.Array, *, rate: float,
                  temperature: float) -> Dict[str, jax.Array]:
  """The probe on one batch of a `StagedNetwork`: `probe/<name>` float32 scalars.

  Features are `model.features(images, train=False)`: BatchNorm uses the running averages and
  nothing is mutated (the probe must not move the training state). The masks are
  `losses.dropout_masks(key, features.shape, rate, 2)` with `key` used as given; θ is
  `params['classifier']['output']`. Jit with `rate` and `temperature` static (and `model`,
  a hashable Linen module, static), e.g.
  `jax.jit(probe_metrics, static_argnames=('model', 'rate', 'temperature'))`.

  Returns:
    `probe/assumption1_fraction`, `probe/mean_abs_r`, `probe/r1` (Table 8),
    `probe/grad_cosine`, `probe/grad_l1_forward`, `probe/grad_l1_reverse` (Figure 4).
  """
  features = model.apply(variables, images, train=False, method=model.features)
  masks = losses.dropout_masks(key, features.shape, rate, 2)
  stats = head_probe(make_head_apply_fn(model, variables),
                     variables['params']['classifier']['output'], features, masks,
                     temperature=temperature)
  return {f'probe/{k}': v for k, v in stats.items()}
