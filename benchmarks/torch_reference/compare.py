r"""sdd_jax against the PyTorch reference loop: same config, N seeds each, final metrics side by
side, a flag where the means differ, training curves.

  python benchmarks/torch_reference/compare.py --config configs/demo.py --seeds 0,1,2,3,4 \
      --out /tmp/cmp_demo_w16
  python benchmarks/torch_reference/compare.py --config configs/demo.py:ce --seeds 0,1,2 \
      --config.model.kwargs.width=64 --out /tmp/cmp_demo_ce_w64

Needs the optional torch extra (`pip install -r requirements-torch.txt`). Ours runs in-process
through `trainer.train_and_evaluate` (workdirs under `OUT/ours_seed<N>/`), the reference is
`reference.train_reference`. Each finished run is saved as `OUT/<impl>_seed<N>.json` and reused
when the command is run again (so `--only ours` and `--only reference` may run as two processes
into one OUT, and a later run without `--only` just tabulates). Outputs: `OUT/results.json`
(per-seed finals and per-epoch histories), `OUT/table.txt`, `OUT/curves.png`.

Final metrics (top-1 %, NLL, 10-bin ECE %, mean confidence %, max |logit|) come from the test
logits by one NumPy formula for both (`logit_metrics.py`). Mean +- std (ddof 1) and the
standard error per implementation; a metric is flagged `DIFFERS` when |mean_ours -
mean_ref| > 2 * sqrt(se_ours**2 + se_ref**2) (the standard error of the difference).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from ml_collections import config_flags
import numpy as np

from benchmarks.torch_reference.logit_metrics import METRICS, summarize

IMPLS = ('ours', 'reference')

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=False)
_SEEDS = flags.DEFINE_string('seeds', '0,1,2,3,4', 'Comma-separated seeds.')
_OUT = flags.DEFINE_string('out', None, 'Output folder.')
_ONLY = flags.DEFINE_enum('only', 'both', ['both', 'ours', 'reference', 'none'],
                          'Train only one implementation (the other is read if saved); none: '
                          'only tabulate the saved runs.')
_DROP_LAST = flags.DEFINE_bool('drop_last', True, 'Reference loader drops the last partial '
                               'batch (as ours); the authors keep it (--nodrop_last).')
_OURS_VARIANCE = flags.DEFINE_enum(
    'ours_bn_variance', 'fast', ['fast', 'two_pass'],
    "Experiment: 'two_pass' patches sdd_jax's ResNet BatchNorm (this process only) to "
    "flax's use_fast_variance=False; 'fast' is the library as it is.")
_LOG_TARGET = flags.DEFINE_bool(
    'reference_log_target_kl', False, "Reference KL as kl_div(log_softmax, log_softmax, "
    "log_target=True) instead of the authors' kl_div(log_softmax, softmax), whose backward is "
    'NaN once a probability underflows (reference.kl_batchmean).')
_THREADS = flags.DEFINE_integer('torch_threads', 1, 'torch.set_num_threads.')
flags.mark_flags_as_required(['config', 'out'])


def compare(finals: dict) -> dict:
  """{impl: {seed: {metric: v}}} -> {metric: {'ours': stats, 'reference': stats, 'diff',
  'se_diff', 'differs'}} over the seeds each implementation has."""
  out = {}
  for metric in METRICS:
    row = {impl: summarize([f[metric] for f in finals[impl].values()])
           for impl in IMPLS if finals.get(impl)}
    if len(row) == 2:
      diff = row['ours']['mean'] - row['reference']['mean']
      se_diff = float(np.hypot(row['ours']['se'], row['reference']['se']))
      row.update(diff=diff, se_diff=se_diff, differs=bool(abs(diff) > 2 * se_diff),
                 within_2se_of_reference=bool(abs(diff) <= 2 * row['reference']['se']))
    out[metric] = row
  return out


def format_table(finals: dict, stats: dict, title: str) -> str:
  lines = [title, '']
  header = f'{"impl":10s} {"seed":>5s} ' + ' '.join(f'{m:>14s}' for m in METRICS)
  lines.append(header)
  for impl in IMPLS:
    for seed, final in sorted(finals.get(impl, {}).items()):
      diverged = final.get('diverged_step')
      lines.append(f'{impl:10s} {seed:>5d} ' + ' '.join(f'{final[m]:14.4f}' for m in METRICS)
                   + ('' if diverged is None else f'  NaN gradient at step {diverged}: stopped'))
  lines.append('')
  for impl in IMPLS:
    if not finals.get(impl):
      continue
    cells = [f'{stats[m][impl]["mean"]:7.3f}+-{stats[m][impl]["std"]:<6.3f}' for m in METRICS]
    lines.append(f'{impl:10s} {"mean":>5s} ' + ' '.join(f'{c:>14s}' for c in cells))
    cells = [f'{stats[m][impl]["se"]:.3f}' for m in METRICS]
    lines.append(f'{impl:10s} {"se":>5s} ' + ' '.join(f'{c:>14s}' for c in cells))
  if all(finals.get(i) for i in IMPLS):
    cells = [f'{stats[m]["diff"]:+.3f}/{stats[m]["se_diff"]:.3f}' for m in METRICS]
    lines.append(f'{"diff/se":10s} {"":>5s} ' + ' '.join(f'{c:>14s}' for c in cells))
    flagged = [m for m in METRICS[:4] if stats[m]['differs']]
    lines.append('')
    lines.append('DIFFERS (|diff| > 2 se_diff): ' + (', '.join(flagged) if flagged else 'none')
                 + '   (max_abs_logit is diagnostic, not judged)')
  return '\n'.join(lines)


def plot_curves(histories: dict, path: str, title: str) -> None:
  """Train loss, test top-1 and test max |logit| per epoch; one thin line per seed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = (('train/loss', 'train loss', 'log'), ('test/top1', 'test top-1 %', 'linear'),
            ('test/max_abs_logit', 'test max |logit|', 'log'))
  fig, axes = plt.subplots(1, len(panels), figsize=(15, 4))
  colours = {'ours': 'tab:blue', 'reference': 'tab:orange'}
  for ax, (key, label, scale) in zip(axes, panels):
    for impl in IMPLS:
      for i, (seed, history) in enumerate(sorted(histories.get(impl, {}).items())):
        epochs = [r['epoch'] for r in history if key in r]
        ax.plot(epochs, [r[key] for r in history if key in r], color=colours[impl], alpha=0.7,
                lw=1, label=(f'{impl} ({"sdd_jax" if impl == "ours" else "PyTorch"})'
                             if i == 0 else None))
    ax.set_xlabel('epoch')
    ax.set_ylabel(label)
    ax.set_yscale(scale)
    ax.grid(alpha=0.3)
  axes[0].legend()
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _run(impl: str, config, seed: int, out: str) -> dict:
  path = os.path.join(out, f'{impl}_seed{seed}.json')
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  if impl == 'ours':
    from benchmarks.torch_reference import ours  # pylint: disable=g-import-not-at-top
    result = ours.train_ours(config, seed, os.path.join(out, f'ours_seed{seed}'))
  else:
    from benchmarks.torch_reference import reference  # pylint: disable=g-import-not-at-top
    result = reference.train_reference(config, seed, drop_last=_DROP_LAST.value,
                                       log_target_kl=_LOG_TARGET.value)
    import torch  # pylint: disable=g-import-not-at-top
    torch.save(result.pop('model').state_dict(), os.path.join(out, f'{impl}_seed{seed}.pt'))
  np.savez(os.path.join(out, f'{impl}_seed{seed}_logits.npz'), logits=result.pop('test_logits'),
           labels=result.pop('test_labels'))
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(result, f, indent=1)
  print(f'{impl} seed {seed}: ' + '  '.join(f'{m} {result["final"][m]:.4f}' for m in METRICS)
        + f'  wall {result["wall_seconds"]:.1f} s', flush=True)
  return result


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(_THREADS.value)
  if _OURS_VARIANCE.value == 'two_pass':
    from benchmarks.torch_reference import ours  # pylint: disable=g-import-not-at-top
    ours.use_two_pass_variance()
  config, out = _CONFIG.value, _OUT.value
  os.makedirs(out, exist_ok=True)
  seeds = [int(s) for s in _SEEDS.value.split(',') if s.strip()]
  impls = {'both': IMPLS, 'none': ()}.get(_ONLY.value, (_ONLY.value,))
  results = {impl: {} for impl in IMPLS}
  for seed in seeds:
    for impl in IMPLS:
      saved = os.path.exists(os.path.join(out, f'{impl}_seed{seed}.json'))
      if impl in impls or saved:
        results[impl][seed] = _run(impl, config, seed, out)
  finals = {impl: {s: {**r['final'], 'diverged_step': r.get('diverged_step')}
                   for s, r in runs.items()} for impl, runs in results.items()}
  stats = compare(finals)
  methods = ', '.join(config.methods.keys()) or 'ce'
  title = (f'{" ".join(sys.argv[1:])}\n{methods}, width {dict(config.model.kwargs).get("width")},'
           f' {config.num_epochs} epochs; seeds {seeds}')
  table = format_table(finals, stats, title)
  print(table)
  walls = {impl: {s: r['wall_seconds'] for s, r in runs.items()} for impl, runs in results.items()}
  with open(os.path.join(out, 'table.txt'), 'w', encoding='utf-8') as f:
    f.write(table + '\n')
  with open(os.path.join(out, 'results.json'), 'w', encoding='utf-8') as f:
    json.dump({'command': sys.argv, 'config': config.to_dict(), 'finals': finals, 'stats': stats,
               'wall_seconds': walls,
               'histories': {i: {s: r['history'] for s, r in runs.items()}
                             for i, runs in results.items()}}, f, indent=1, default=str)
  plot_curves({i: {s: r['history'] for s, r in runs.items()} for i, runs in results.items()},
              os.path.join(out, 'curves.png'), title.split('\n')[1])


if __name__ == '__main__':
  app.run(main)
