r"""How much of an ours-vs-reference gap is the BatchNorm running-variance estimator?

flax's `nn.BatchNorm` (ours) keeps the running average of the *biased* batch variance; PyTorch's
`nn.BatchNorm2d` (the reference) of the *unbiased* one, n / (n - 1) times larger, n = batch x H x
W of that layer. On 8x8 digits the last stage is 1x1, so n = 64 there and PyTorch's evaluation
divides by a 1.6 % larger variance. This script re-evaluates the final models of a
`compare.py` run both ways, in PyTorch, with the same NumPy metrics:

- ours (restored from `OUT/ours_seed<N>/checkpoints`, copied into the torch network) as trained
  and with running var x n / (n - 1) (as PyTorch would have kept it);
- the reference (`OUT/reference_seed<N>.pt`, when saved) as trained and with running var x
  (n - 1) / n (as flax would have kept it).

  python benchmarks/torch_reference/bn_variance.py --config configs/demo.py --out /tmp/cmp_w16

(Exact for the last update; the running average mixes many batches of the same n, so the
factor carries over to it.)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from ml_collections import config_flags
import numpy as np

from benchmarks.torch_reference import logit_metrics

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=False)
_OUT = flags.DEFINE_string('out', None, 'A compare.py output folder.')
_SEEDS = flags.DEFINE_string('seeds', '0,1,2,3,4', 'Comma-separated seeds.')
flags.mark_flags_as_required(['config', 'out'])


def elements_per_channel(net, batch_shape) -> dict:
  """{BatchNorm module name: batch x H x W it normalises} for a training batch of that shape."""
  import torch  # pylint: disable=g-import-not-at-top
  counts, handles = {}, []
  for name, module in net.named_modules():
    if isinstance(module, torch.nn.BatchNorm2d):
      handles.append(module.register_forward_hook(
          lambda m, inputs, _, name=name: counts.__setitem__(
              name, inputs[0].numel() // inputs[0].shape[1])))
  net.eval()
  with torch.no_grad():
    net(torch.zeros(batch_shape))
  for handle in handles:
    handle.remove()
  return counts


def scaled_variance_metrics(net, counts, test_x, labels, power: int) -> dict:
  """Metrics with every running_var multiplied by (n / (n - 1))**power (restored after)."""
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks.torch_reference import reference  # pylint: disable=g-import-not-at-top
  modules = dict(net.named_modules())
  saved = {name: modules[name].running_var.clone() for name in counts}
  with torch.no_grad():
    for name, n in counts.items():
      modules[name].running_var.mul_((n / (n - 1)) ** power)
  logits = reference.predict(net, test_x, 1000)
  with torch.no_grad():
    for name, value in saved.items():
      modules[name].running_var.copy_(value)
  return logit_metrics.logit_metrics(logits, labels)


def main(argv):
  del argv
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks.torch_reference import model as model_lib  # pylint: disable=g-import-not-at-top
  from benchmarks.torch_reference import reference  # pylint: disable=g-import-not-at-top
  from sdd_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  config, out = _CONFIG.value, _OUT.value
  source = data_lib.create_source(config.data, config.data.eval_split)
  labels = source.labels()
  test_x = reference._transforms(config.data, train=False)(  # pylint: disable=protected-access
      torch.from_numpy(np.ascontiguousarray(source.images.transpose(0, 3, 1, 2))))
  channels = source.images.shape[-1]
  rows = {}
  for seed in [int(s) for s in _SEEDS.value.split(',')]:
    net = reference.create_model(config, channels)
    counts = elements_per_channel(net, (config.batch_size, *test_x.shape[1:]))
    directory = os.path.join(out, f'ours_seed{seed}', 'checkpoints')
    if os.path.isdir(directory):
      manager = ocp.CheckpointManager(directory)
      tree = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
      model_lib.load_flax_variables(net, {'params': tree['params'],
                                          'batch_stats': tree['batch_stats']})
      rows[('ours', 'biased (flax, as trained)', seed)] = scaled_variance_metrics(
          net, counts, test_x, labels, 0)
      rows[('ours', 'unbiased (as PyTorch)', seed)] = scaled_variance_metrics(
          net, counts, test_x, labels, 1)
    path = os.path.join(out, f'reference_seed{seed}.pt')
    if os.path.exists(path):
      net.load_state_dict(torch.load(path))
      rows[('reference', 'unbiased (PyTorch, as trained)', seed)] = scaled_variance_metrics(
          net, counts, test_x, labels, 0)
      rows[('reference', 'biased (as flax)', seed)] = scaled_variance_metrics(
          net, counts, test_x, labels, -1)
  lines = [f'{"impl":10s} {"running var":32s} {"seeds":>5s} '
           + ' '.join(f'{m:>14s}' for m in logit_metrics.METRICS[:4])]
  for impl, variant in dict.fromkeys((i, v) for i, v, _ in rows):
    finals = [rows[k] for k in rows if k[:2] == (impl, variant)]
    cells = [logit_metrics.summarize([f[m] for f in finals]) for m in logit_metrics.METRICS[:4]]
    lines.append(f'{impl:10s} {variant:32s} {len(finals):5d} '
                 + ' '.join(f'{c["mean"]:7.3f}+-{c["se"]:<5.3f}' for c in cells))
  table = '\n'.join(lines + ['(mean +- standard error over seeds)'])
  print(table)
  with open(os.path.join(out, 'bn_variance.txt'), 'w', encoding='utf-8') as f:
    f.write(table + '\n')
  with open(os.path.join(out, 'bn_variance.json'), 'w', encoding='utf-8') as f:
    json.dump({'/'.join(map(str, k)): v for k, v in rows.items()}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
