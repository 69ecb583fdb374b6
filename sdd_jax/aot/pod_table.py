r"""`python -m sdd_jax.aot.pod_table --out DIR [--only TEXT]`: the pod defaults' evidence.

Compiles the train step of each row of `GRID` (the pod variants of the ImageNet ResNet-152, the
CIFAR-100 ResNet-18 and the IWSLT Transformer, at two or three TPU slices, over a small grid of
per-chip batch and `model.bn_group`) with the compile check (`python -m sdd_jax.aot`), and
writes `DIR/pod_table.md` and `DIR/pod_table.json`: one row per compile, dated, with the jax and
libtpu versions and the host. Each row's report is kept in `DIR/rows/<key>.json` as soon as it
is compiled; a row already there is not compiled again (so a killed run resumes, and `--only`
runs a subset, e.g. beside another process on the same DIR). docs/pods.md, "Pod defaults from
the compile check", holds the table this made and the choices it supports.
"""
import argparse
import datetime
import json
import os
import platform
import re
import sys
from typing import Dict, List

from sdd_jax.aot import __main__ as aot_main
from sdd_jax.aot import compile as compile_lib
from sdd_jax.errors import UserError

R152, R18, IWSLT = ('configs/imagenet_resnet152_sdd.py:pod', 'configs/cifar100_resnet18_sdd.py:pod',
                    'configs/iwslt15_pskd.py:pod')


def _row(config: str, topology: str, chips: int, per_chip: int, bn_group=None) -> Dict:
  """A grid row: `per_chip` images (translation: tokens) per chip on `chips` chips."""
  if config == IWSLT:
    overrides = [f'--config.data.tokens_per_batch={per_chip * chips}']
  else:
    overrides = [f'--config.batch_size={per_chip * chips}',
                 f'--config.model.bn_group={bn_group}']
  return dict(config=config, topology=topology, overrides=overrides)


GRID: List[Dict] = [
    # ResNet-152: today's 2048 on v5e-256 (8/chip, global BN); 32/chip (global 8192) with
    # groups of 32 (the paper's batch); 2048 on v4-32 (16 chips: 128/chip) with groups of 32.
    _row(R152, 'v5e:16x16', 256, 8, 0),
    _row(R152, 'v5e:16x16', 256, 32, 32),
    _row(R152, 'v4:2x2x4', 16, 128, 32),
    # ResNet-18 CIFAR on 8 chips: the paper's batch 128 (16/chip, global BN); the pod variant's
    # 1024 (128/chip) with global BN and with groups of 128 (the paper's BN batch); 1024 on 4
    # chips (256/chip).
    _row(R18, 'v5e:2x4', 8, 16, 0),
    _row(R18, 'v5e:2x4', 8, 128, 0),
    _row(R18, 'v5e:2x4', 8, 128, 128),
    _row(R18, 'v5e:2x2', 4, 256, 128),
    _row(R18, 'v4:2x2x2', 8, 128, 128),
    _row(R18, 'v5p:2x2x2', 8, 128, 128),
    # IWSLT Transformer on one 4-chip host (libtpu refuses v5e:1x1 with its default host bounds): the recipe's
    # 4096 tokens per step (1024/chip), and 4x that; tokens padded, longest bucket (256).
    _row(IWSLT, 'v5e:2x2', 4, 1024),
    _row(IWSLT, 'v5e:2x2', 4, 4096),
    _row(IWSLT, 'v5p:2x2x1', 4, 4096),
]


def key(row: Dict) -> str:
  text = ' '.join([row['config'], row['topology']] + row['overrides'])
  return re.sub(r'[^A-Za-z0-9.=]+', '_', text.replace('configs/', '')).strip('_')


def summarise(row: Dict, report: Dict) -> Dict:
  """The table's figures of one compiled train program (`report`: the compile check's report,
  or None where the program does not fit; then `row['error']` says why)."""
  out = dict(config=row['config'], topology=row['topology'], overrides=row['overrides'])
  if report is None:
    return dict(out, fits=False, error=row['error'])
  train, devices = report['programs']['train'], report['devices']
  estimate, memory = train['estimate'], train['memory']
  group = [o.split('=')[1] for o in row['overrides'] if o.startswith('--config.model.bn_group=')]
  return dict(
      out, fits=train['fits'], chips=devices, unit=report['unit'],
      per_chip=train['per_step'] // devices, per_step=train['per_step'],
      bn_group=int(group[0]) if group else None,
      memory_total=memory['total'], hbm=report['chip']['hbm_bytes'], flops=train['flops'],
      bytes_accessed=train['bytes_accessed'], compile_seconds=train['compile_seconds'],
      all_reduces=train['collectives'].get('all-reduce', {}).get('count', 0),
      collective_count=sum(c['count'] for c in train['collectives'].values()),
      collective_bytes=sum(c['bytes'] for c in train['collectives'].values()),
      **{k: estimate[k] for k in ('compute_seconds', 'memory_seconds', 'collective_seconds',
                                  'step_seconds', 'mfu', 'per_slice_per_second')})


HEADER = ('| config | slice (chips) | per chip | global | BN group | memory / HBM | GFLOP/chip '
          '| GB/chip | FLOP/byte | collectives (all-reduce) | est. compute / memory / '
          'collectives ms | est. step ms | est. MFU | est. per s (slice) | compile s |')


def markdown(rows: List[Dict], meta: Dict) -> str:
  """The dated table (figures per chip and step; estimates labelled)."""
  lines = [f'Command: `{meta["command"]}`; {meta["date"]}, jax {meta["jax"]}, libtpu '
           f'{meta["libtpu"]}, compiled on {meta["host"]}. Compiled figures per chip and step '
           '(XLA memory and cost analyses), train step only; the step time, MFU and rate are a '
           'roofline ESTIMATE (docs/pods.md, "Compile check"), not measurements.', '', HEADER,
           '|' + ' --- |' * 15]
  for r in rows:
    name = os.path.basename(r['config'])
    if not r['fits']:
      lines.append(f'| {name} | {r["topology"]} | {" ".join(r["overrides"])} | does not fit: '
                   f'{r.get("error", "over the headroom")} |' + ' |' * 11)
      continue
    unit = 'tok' if r['unit'] == 'tokens' else 'img'
    group = '-' if r['bn_group'] is None else ('global' if r['bn_group'] == 0 else r['bn_group'])
    lines.append(
        f'| {name} | {r["topology"]} ({r["chips"]}) | {r["per_chip"]} {unit} | {r["per_step"]} | '
        f'{group} | {r["memory_total"] / 2**30:.2f} / {r["hbm"] / 2**30:.2f} GiB | '
        f'{r["flops"] / 1e9:.1f} | {r["bytes_accessed"] / 1e9:.2f} | '
        f'{r["flops"] / r["bytes_accessed"]:.0f} | {r["collective_count"]} ({r["all_reduces"]}) | '
        f'{r["compute_seconds"] * 1e3:.2f} / {r["memory_seconds"] * 1e3:.2f} / '
        f'{r["collective_seconds"] * 1e3:.2f} | {r["step_seconds"] * 1e3:.2f} | {r["mfu"]:.1%} | '
        f'{r["per_slice_per_second"]:,.0f} {unit} | {r["compile_seconds"]:.0f} |')
  return '\n'.join(lines) + '\n'


def quote(row: Dict) -> str:
  """One row in words, as the configs' docstrings quote it (tests/aot/pod_table_test.py checks
  that each docstring holds the quote of its chosen row of docs/pod_table.json)."""
  unit = 'tokens' if row['unit'] == 'tokens' else 'images'
  group = '' if row['bn_group'] is None else (
      ', global BN' if row['bn_group'] == 0 else f', BN groups of {row["bn_group"]}')
  return (f'{row["topology"]} ({row["chips"]} chips), {row["per_chip"]} {unit}/chip{group}: '
          f'{row["memory_total"] / 2**30:.2f} GiB/chip, {row["flops"] / 1e9:.1f} GFLOP and '
          f'{row["bytes_accessed"] / 1e9:.2f} GB per chip per step, {row["collective_count"]} '
          f'collectives, est. step {row["step_seconds"] * 1e3:.2f} ms, est. MFU {row["mfu"]:.1%}')


def _meta(argv) -> Dict:
  import jax  # pylint: disable=g-import-not-at-top
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    pass
  return dict(command='python -m sdd_jax.aot.pod_table ' + ' '.join(argv[1:]),
              date=datetime.date.today().isoformat(), jax=jax.__version__,
              libtpu=metadata.version('libtpu'), host=f'{os.cpu_count()}-core {cpu}')


def run(argv) -> List[Dict]:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.aot.pod_table')
  parser.add_argument('--out', required=True)
  parser.add_argument('--only', default='', help='compile only the rows whose key has TEXT')
  args = parser.parse_args(argv[1:])
  os.makedirs(os.path.join(args.out, 'rows'), exist_ok=True)
  rows = []
  for row in GRID:
    path = os.path.join(args.out, 'rows', key(row) + '.json')
    if not os.path.exists(path) and args.only in key(row):
      argv_row = ['aot', '--config', row['config'], '--topology', row['topology'],
                  '--programs', 'train', '--out', os.path.join(args.out, 'reports', key(row))]
      try:
        report = aot_main.run(argv_row + row['overrides'])
      except compile_lib.DoesNotFitError as e:
        report, row = None, dict(row, error=str(e))
      summary = summarise(row, report)
      with open(path, 'w') as f:
        json.dump(summary, f, indent=1, sort_keys=True)
      print(key(row), 'done', flush=True)
    if os.path.exists(path):
      with open(path) as f:
        rows.append(json.load(f))
  meta = _meta(argv)
  with open(os.path.join(args.out, 'pod_table.json'), 'w') as f:
    json.dump(dict(meta=meta, rows=rows), f, indent=1, sort_keys=True)
  with open(os.path.join(args.out, 'pod_table.md'), 'w') as f:
    f.write(markdown(rows, meta))
  return rows


def main(argv) -> int:
  try:
    run(argv)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
