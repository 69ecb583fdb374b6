"""The PyTorch reference loop (benchmarks/torch_reference) against our train step, on one batch.

The reference is an independent implementation of the SD-Dropout authors' algorithm in PyTorch
(torch.optim.SGD, nn.BatchNorm2d, F.kl_div). Initialised from our Flax variables and given the
dropout masks our step draws, two steps of each on the same two digits batches must agree:
the logits, CE, the SD-Dropout term and the total loss, then the parameters and the BatchNorm
running statistics after each step (coupled weight decay, momentum, BN momentum). Two steps, so
that the momentum buffer and weight decay's place before it (coupled vs decoupled) both show.

Needs the optional torch extra (`pip install -r requirements-torch.txt`); skipped without it.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip(
    'torch', reason='the PyTorch reference needs the optional extra: pip install -r '
    'requirements-torch.txt')

from benchmarks.torch_reference import model as torch_model  # noqa: E402
from benchmarks.torch_reference import reference  # noqa: E402
from configs import demo  # noqa: E402
from sdd_jax import data as data_lib  # noqa: E402
from sdd_jax import losses  # noqa: E402
from sdd_jax import methods as methods_lib  # noqa: E402
from sdd_jax.train import optim  # noqa: E402
from sdd_jax import parallel  # noqa: E402
from sdd_jax.train import state as state_lib  # noqa: E402
from sdd_jax.classification import step as step_lib  # noqa: E402
from sdd_jax.classification import trainer  # noqa: E402
from sdd_jax.data import augment  # noqa: E402

SEED = 3
NUM_STEPS = 2


def _config():
  """The digits demo with SD-Dropout, width 4, batch 16; a large weight decay and lr so that a
  misplaced decay (decoupled instead of coupled) moves the second step well above float32 noise."""
  config = demo.get_config()
  config.model.kwargs = dict(width=4)
  config.batch_size = 16
  config.optim.lr = 0.1
  config.optim.weight_decay = 0.05
  config.seed = SEED
  return config


def _masks(seed, step, shape, rate):
  """The two masks our train step draws at `step` (step key -> the method's key -> masks)."""
  key = methods_lib.base.method_key(step_lib.step_key(seed, jnp.int32(step)), 'sd_dropout')
  return np.asarray(losses.dropout_masks(key, shape, rate, 2))


@pytest.fixture(scope='module')
def runs():
  """Two steps of ours and of the reference from the same weights, on the same batches."""
  config = _config()
  mesh = parallel.create_mesh()
  methods = methods_lib.create_methods(config.methods)
  loader = data_lib.TrainLoader(data_lib.create_source(config.data, 'train'), config.data,
                                global_batch=config.batch_size, seed=SEED)
  batches = [loader.batch(i) for i in range(NUM_STEPS)]
  for batch in batches:  # uint8 pixels -> the normalised float32 images both networks see
    batch['images'] = augment.normalize(batch['images'], config.data.mean, config.data.std)
  schedule = optim.make_lr_schedule(config.optim, loader.steps_per_epoch)
  tx = optim.make_optimizer(config.optim, schedule)
  model = trainer.create_model(config)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx, methods=methods),
                  out_shardings=state_lib.shardings(mesh, methods))(
                      state_lib.init_key(SEED), jnp.zeros((1, *loader.image_shape)))
  initial = _host_copy(state.variables)
  train_step = step_lib.make_train_step(model, tx, methods, seed=SEED, lr_schedule=schedule,
                                        mesh=mesh)
  ours = {'metrics': [], 'variables': [], 'train_logits': [],
          'eval_logits': np.asarray(model.apply(initial, batches[0]['images'], train=False))}
  for batch in batches:
    ours['train_logits'].append(np.asarray(model.apply(
        _host_copy(state.variables), batch['images'], train=True, mutable=['batch_stats'])[0]))
    state, metrics = train_step(state, parallel.to_global(batch, mesh))
    ours['metrics'].append(jax.device_get(metrics))
    ours['variables'].append(_host_copy(state.variables))

  net = reference.create_model(config, in_channels=1)
  torch_model.load_flax_variables(net, initial)
  optimizer, _ = reference.make_optimizer(net, config.optim)
  sd = reference.sd_dropout_config(config)
  theirs = {'losses': [], 'variables': [], 'train_logits': []}
  net.eval()
  with torch.no_grad():
    theirs['eval_logits'] = net(_nchw(batches[0]['images'])).numpy()
  for i, batch in enumerate(batches):
    net.train()
    features_dim = net.classifier.in_features
    masks = [torch.from_numpy(np.array(m)) for m in
             _masks(SEED, i, (config.batch_size, features_dim), sd['rate'])]
    out = reference.sd_dropout_loss(net, _nchw(batch['images']),
                                    torch.from_numpy(batch['labels'].astype(np.int64)), sd, masks)
    optimizer.zero_grad()
    out['loss'].backward()
    optimizer.step()
    theirs['losses'].append({k: float(out[k].detach()) for k in ('loss', 'ce', 'sd_dropout')})
    theirs['train_logits'].append(out['logits'].detach().numpy())
    theirs['variables'].append(torch_model.flax_tree_from_torch(net, initial))
  return {'ours': ours, 'theirs': theirs, 'initial': initial}


def _host_copy(tree):
  """NumPy copies: the train step donates the state, so views of its buffers would change."""
  return jax.tree.map(lambda x: np.array(x, copy=True), tree)


def _nchw(images):
  return torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)))


def _leaves(tree):
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_logits_agree(runs):
  """Evaluation mode at the start, training mode (batch statistics) before each step; float32
  convolutions of two libraries, through BatchNorm over as few as 16 values per channel."""
  pairs = [(runs['theirs']['eval_logits'], runs['ours']['eval_logits'])]
  pairs += list(zip(runs['theirs']['train_logits'], runs['ours']['train_logits']))
  for theirs, ours in pairs:
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4 * np.abs(ours).max())


def test_losses_agree(runs):
  for theirs, ours in zip(runs['theirs']['losses'], runs['ours']['metrics']):
    assert theirs['sd_dropout'] > 1e-3  # the masks really differ: the term is not trivially 0
    np.testing.assert_allclose(theirs['ce'], ours['train/loss_ce'], rtol=1e-5)
    np.testing.assert_allclose(theirs['sd_dropout'], ours['train/loss_sd_dropout'], rtol=1e-5)
    np.testing.assert_allclose(theirs['loss'], ours['train/loss'], rtol=1e-5)


@pytest.mark.parametrize('step', range(NUM_STEPS))
def test_parameters_agree_after_each_step(runs, step):
  """SGD with coupled weight decay and momentum: the updates p_t - p_0 agree leaf by leaf."""
  start = _leaves(runs['initial']['params'])
  ours = _leaves(runs['ours']['variables'][step]['params'])
  theirs = _leaves(runs['theirs']['variables'][step]['params'])
  assert ours.keys() == theirs.keys()
  for name in ours:
    ours_update, theirs_update = ours[name] - start[name], theirs[name] - start[name]
    scale = np.abs(ours_update).max()
    assert scale > 0, name
    np.testing.assert_allclose(theirs_update, ours_update, rtol=0, atol=1e-3 * scale,
                               err_msg=name)


@pytest.mark.parametrize('step', range(NUM_STEPS))
def test_batch_stats_agree_after_each_step(runs, step):
  """Running mean and variance as PyTorch's BatchNorm2d keeps them: momentum 0.1, the running
  variance from the unbiased batch variance."""
  start = _leaves(runs['initial']['batch_stats'])
  ours = _leaves(runs['ours']['variables'][step]['batch_stats'])
  theirs = _leaves(runs['theirs']['variables'][step]['batch_stats'])
  for name in ours:
    np.testing.assert_equal(start[name], 0.0 if name.endswith("['mean']") else 1.0)
    np.testing.assert_allclose(theirs[name], ours[name], rtol=1e-4, atol=1e-6, err_msg=name)


def _torch_symmetric_kl_grads(logits_u, logits_v, temperature, log_target):
  u = torch.tensor(logits_u, requires_grad=True)
  v = torch.tensor(logits_v, requires_grad=True)
  term = (reference.kl_batchmean(u, v, temperature, log_target)
          + reference.kl_batchmean(v, u, temperature, log_target))
  term.backward()
  return float(term.detach()), u.grad.numpy(), v.grad.numpy()


@pytest.mark.parametrize('gap', [5.0, 400.0])
def test_symmetric_kl_gradients_and_the_authors_nan(gap):
  """Ours (`losses.symmetric_kl`, 'both') equals the reference's value and gradients; at a logit
  gap above ~100 T (a probability underflows to 0 in float32) the authors' `kl_div(log_softmax,
  softmax)` backward is NaN while ours and the `log_target` form stay finite and agree."""
  temperature = 3.0
  logits_u = np.array([[gap, 0.0, -1.0], [0.5, -0.5, 0.0]], np.float32)
  logits_v = np.array([[0.0, gap, 1.0], [0.0, 0.3, -0.2]], np.float32)
  ours_fn = lambda u, v: jnp.mean(losses.symmetric_kl(u, v, temperature))
  ours_value = float(ours_fn(logits_u, logits_v))
  ours_du, ours_dv = jax.grad(ours_fn, argnums=(0, 1))(logits_u, logits_v)
  value, du, dv = _torch_symmetric_kl_grads(logits_u, logits_v, temperature, log_target=True)
  np.testing.assert_allclose(value, ours_value, rtol=1e-5)
  np.testing.assert_allclose(du, ours_du, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(dv, ours_dv, rtol=1e-4, atol=1e-7)
  value, du, dv = _torch_symmetric_kl_grads(logits_u, logits_v, temperature, log_target=False)
  np.testing.assert_allclose(value, ours_value, rtol=1e-5)  # the forward is finite either way
  if gap < 100 * temperature:
    np.testing.assert_allclose(du, ours_du, rtol=1e-4, atol=1e-7)
  else:
    assert np.isnan(du).any() and np.isfinite(np.asarray(ours_du)).all()


class _FeaturesAsInput(torch.nn.Module):
  """A fake network for `reference.sd_dropout_loss`: the 'images' are the pooled features."""

  def __init__(self, kernel, bias):
    super().__init__()
    self.classifier = torch.nn.Linear(*kernel.shape)
    with torch.no_grad():
      self.classifier.weight.copy_(torch.from_numpy(kernel.T.copy()))
      self.classifier.bias.copy_(torch.from_numpy(bias))

  def features(self, x):
    return x


@pytest.mark.parametrize('direction', ['both', 'forward', 'reverse'])
def test_sd_dropout_term_and_gradients_per_direction(direction):
  """The reference's SD-Dropout term (value, gradients w.r.t. the features and the head) equals
  `losses.sd_dropout` for each KL direction, with our masks injected."""
  rng = np.random.default_rng(0)
  features = rng.normal(size=(6, 8)).astype(np.float32) ** 2
  kernel = rng.normal(size=(8, 5)).astype(np.float32)
  bias = rng.normal(size=5).astype(np.float32)
  key = jax.random.key(7)
  sd = {'weight': 1.0, 'temperature': 3.0, 'rate': 0.5, 'direction': direction}

  def ours_term(x, w, b):
    return jnp.mean(losses.sd_dropout(lambda f: f @ w + b, x, key, rate=sd['rate'],
                                      temperature=sd['temperature'], direction=direction))

  value = float(ours_term(features, kernel, bias))
  grads = jax.grad(ours_term, argnums=(0, 1, 2))(features, kernel, bias)
  net = _FeaturesAsInput(kernel, bias)
  x = torch.tensor(features, requires_grad=True)
  masks = [torch.from_numpy(np.array(m))  # a writable copy: torch refuses read-only arrays
           for m in np.asarray(losses.dropout_masks(key, features.shape, sd['rate'], 2))]
  out = reference.sd_dropout_loss(net, x, torch.zeros(6, dtype=torch.int64), sd, masks)
  out['sd_dropout'].backward()
  np.testing.assert_allclose(float(out['sd_dropout'].detach()), value, rtol=1e-5)
  for theirs, ours in ((x.grad, grads[0]), (net.classifier.weight.grad.T, grads[1]),
                       (net.classifier.bias.grad, grads[2])):
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=1e-4, atol=1e-6)
