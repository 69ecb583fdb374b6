"""`python -m sdd_jax.export --workdir W --out F.safetensors [--step N] [--member 1]`: a trained
network in torchvision's layout, for torchvision, timm, mmdetection or our detection recipe.

Writes the checkpoint's plain network (the newest, or `--step`; no method-owned variables such
as BYOT's auxiliary heads; DML: network 0, or network 1 with `--member 1`) under torchvision's
state_dict names and layouts (`sdd_jax/models/torchvision_io.py`) with safetensors' NumPy API
(no torch needed), and string metadata: `model`, `torchvision_model`, `step`, `config_digest`,
`num_classes`, `methods` (a JSON list of the run's method names, `[]` for cross-entropy only),
`data` (the training set's name), `input` (RGB in [0, 1], then `(x - mean) / std` with the run's
`mean` / `std`, HWC images transposed to NCHW for torch), and `stem` (`imagenet`, exactly torchvision's, or
`cifar`: a 3x3 stride-1 stem without max-pool, which `torchvision.models.<name>()` does not
build). `models.load_torchvision` reads such a file back; `config.model.init_from` starts a
run from one.

A model without a torchvision counterpart (ViT, pre-activation ResNet, a head with hidden
layers), a missing checkpoint, `--member 1` without DML, or an `--out` that cannot be a file
(a folder, a path under a regular file, an unwritable folder) is one line (`error: ...`, exit
1), and nothing is written.
"""
import argparse
import json
import os
import sys
from typing import Optional, Sequence

import jax
import numpy as np
from safetensors import numpy as safetensors_numpy

from sdd_jax.workdir import checkpoint as checkpoint_lib
from sdd_jax.workdir import restore as restore_lib
from sdd_jax import methods as methods_lib
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.errors import UserError
from sdd_jax.models import build
from sdd_jax.models import torchvision_io


def check_out(out: str) -> None:
  """Raises ExportError (one line) when `out` cannot be written as a file: empty, a folder
  (or ends in a separator), or under a regular file. Reads only; a local path's missing
  parent folders are fine (the export makes them)."""
  if not out.strip():
    raise torchvision_io.ExportError('--out is empty; give a file path such as net.safetensors')
  if not workdir_path.is_local(out):
    return
  if out.endswith(os.sep) or os.path.isdir(out):
    raise torchvision_io.ExportError(f'--out {out} is a folder; give a file path in it, such as '
                                     f'{os.path.join(out, "net.safetensors")}')
  parent = os.path.dirname(os.path.abspath(out))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise torchvision_io.ExportError(f'--out {out}: {parent} is a file, not a folder; give a path '
                                     'in a folder')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise torchvision_io.ExportError(f'--out {out}: the folder {parent} cannot be written; give '
                                     'a path in a writable folder')


def _write(out: str, data: bytes) -> None:
  """Writes `out` whole (through `<out>.tmp` locally); an OSError is one line, with no .tmp
  left behind."""
  target = workdir_path.path(out)
  try:
    target.parent.mkdir(parents=True, exist_ok=True)
    workdir_path.write_bytes(target, data)
  except OSError as e:
    if workdir_path.is_local(out) and os.path.isfile(os.fspath(target) + '.tmp'):
      os.remove(os.fspath(target) + '.tmp')
    raise torchvision_io.ExportError(f'--out {out} cannot be written ({e.strerror or e}); give '
                                     'a writable file path') from None


def export(workdir: str, out: str, step: Optional[int] = None, member: int = 0) -> dict:
  """Writes the safetensors file; returns its metadata. Every check (`--out`, the workdir,
  the model, the checkpoint) comes before the write."""
  workdir_path.check_store(out, '--out')
  check_out(out)
  config = restore_lib.load_config(workdir)
  if config.get('task', 'classification') != 'classification':
    raise torchvision_io.ExportError(
        f'{workdir} is a {config.task} run: export writes image classifiers in torchvision\'s '
        f'layout; a {config.task} run\'s weights stay in its checkpoints ({workdir}/checkpoints, '
        f'evaluated with python evaluate.py --workdir {workdir})')
  model = build.create_model(config)
  torchvision_io.check_exportable(config.model.name, model)
  if member not in (0, 1) or (member == 1 and 'dml' not in config.methods):
    raise torchvision_io.ExportError(
        f'--member {member}: only a DML run has a network 1 (this run: methods '
        f'{", ".join(config.methods) or "none"}); use --member 0')
  try:
    restored = checkpoint_lib.read_checkpoint(workdir, step)
  except FileNotFoundError:
    raise torchvision_io.ExportError(f'no checkpoint in {workdir}; train first') from None
  variables = {c: restored[c] for c in ('params', 'batch_stats') if c in restored}
  if member == 1:
    variables = {c: tree['net1'] for c, tree in variables.items() if 'net1' in tree}
  else:
    variables = methods_lib.inference_variables(
        methods_lib.create_methods(config.methods), variables)
  arrays = torchvision_io.to_torchvision(config.model.name, jax.device_get(variables),
                                         step=int(restored['step']))
  metadata = {
      'model': config.model.name,
      'torchvision_model': torchvision_io.torchvision_name(config.model.name),
      'step': str(int(restored['step'])),
      'config_digest': workdir_lib.config_digest(config),
      'num_classes': str(config.data.num_classes),
      'methods': json.dumps(sorted(config.methods)),  # [] = cross-entropy only
      'data': str(config.data.name),
      'member': str(member),
      'stem': getattr(model, 'stem', 'imagenet'),
      'input': 'RGB, NCHW, pixels in [0, 1], then (x - mean) / std',
      'mean': json.dumps(list(config.data.mean)),
      'std': json.dumps(list(config.data.std)),
  }
  data = safetensors_numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                                metadata=metadata)
  _write(out, data)
  return metadata


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.export',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='a train.py workdir')
  parser.add_argument('--out', required=True, help='the .safetensors file to write')
  parser.add_argument('--step', type=int, default=None, help='checkpoint step (default: newest)')
  parser.add_argument('--member', type=int, default=0, help='DML: network 0 or 1')
  args = parser.parse_args(argv)
  try:
    metadata = export(args.workdir, args.out, args.step, args.member)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'{args.out}: {metadata["model"]} at step {metadata["step"]} in torchvision\'s layout '
        f'({metadata["torchvision_model"]}, {metadata["stem"]} stem)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
