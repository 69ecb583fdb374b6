"""ddgsd: symmetric KL between two views (each target detached) + MMD of the batch-mean
features, against NumPy; CE on both views; identical views are an unmet need."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from sdd_jax.config import validation as config_validation
from sdd_jax import methods
from sdd_jax.methods import base
from sdd_jax.methods.ddgsd import DDGSD
from tests.methods import numpy_reference as ref

LABELS = np.array([0, 3, 2, 2])


def _ctx(z1, z2, f1, f2):
  return base.StepContext(model=None, variables=None, batch={'labels': LABELS}, features=f1,
                          logits=z1, ce_logits=((z1, 1.0), (z2, 1.0)),
                          outputs={'second_logits': z2, 'second_features': f2})


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  return (ref.logits(rng), ref.logits(rng), rng.normal(size=(4, 3)).astype(np.float32),
          rng.normal(size=(4, 3)).astype(np.float32))


def test_term_against_numpy_and_the_weighted_total():
  z1, z2, f1, f2 = _inputs()
  method = DDGSD()
  term, metrics = jax.jit(lambda *a: method.loss(_ctx(*a), None))(z1, z2, f1, f2)
  kl = ref.kl(z1, z2, 3.0) + ref.kl(z2, z1, 3.0)
  mmd = np.sum((f1.astype(np.float64).mean(0) - f2.mean(0)) ** 2)
  np.testing.assert_allclose(term['kl'], kl, rtol=1e-5)  # scaled by T^2 in combine
  np.testing.assert_allclose(term['mmd'], 0.005 * mmd, rtol=1e-5)  # not scaled
  np.testing.assert_allclose(metrics['train/ddgsd_mmd'], mmd, rtol=1e-5)
  # combine: CE on both views summed + T^2 * symKL + 0.005 * MMD (not times T^2).
  ctx = _ctx(z1, z2, f1, f2)
  total, metrics = methods.combine([method], ctx, jax.random.key(0), methods.base_loss(ctx))
  ce = ref.cross_entropy(z1, LABELS) + ref.cross_entropy(z2, LABELS)
  np.testing.assert_allclose(total, ce.mean() + 9.0 * kl.mean() + 0.005 * mmd, rtol=1e-5)
  np.testing.assert_allclose(metrics['train/loss_ddgsd'], kl.mean() + 0.005 * mmd / 9.0,
                             rtol=1e-5)


def test_each_direction_detaches_its_target():
  z1, z2, f1, f2 = _inputs(1)
  method = DDGSD()

  def mean_term(*args):  # the term in units of T^2, as combine reports it
    ctx = _ctx(*args)
    return methods.combine([method], ctx, jax.random.key(0), jnp.zeros(4))[1]['train/loss_ddgsd']

  g1, g2, gf1, gf2 = jax.jit(jax.grad(mean_term, argnums=(0, 1, 2, 3)))(z1, z2, f1, f2)
  p1, p2 = ref.softmax(z1, 3.0), ref.softmax(z2, 3.0)
  # KL(sg p1 || p2) moves only z2, KL(sg p2 || p1) only z1: d/dz_i = (p_i - p_other) / T / B.
  np.testing.assert_allclose(g1, (p1 - p2) / 3.0 / 4, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(g2, (p2 - p1) / 3.0 / 4, rtol=1e-4, atol=1e-7)
  gap = f1.astype(np.float64).mean(0) - f2.mean(0)  # MMD reaches the features of both views
  np.testing.assert_allclose(gf1, np.broadcast_to(0.005 / 9 * 2 * gap / 4, f1.shape),
                             rtol=1e-4, atol=1e-9)
  np.testing.assert_allclose(gf2, -gf1, rtol=1e-6)


def test_identical_views_are_an_unmet_need():
  config = common.recipe()
  config.methods.ddgsd = {}
  config.data.augment = 'none'
  with pytest.raises(config_validation.ConfigError,
                     match=r'config.methods.ddgsd: ddgsd needs two differently augmented views.*'
                           r'set --config.data.augment=cifar'):
    config_validation.validate(config)
