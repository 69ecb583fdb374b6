r"""`python -m benchmarks.device_check --out DIR [--smoke] [--data DIR]`: see `__init__.py`.

Writes `DIR/device_check.json` (strict JSON: null for what is unknown) and `DIR/device_check.md`.
Sections run in order: environment, the classification step variants, the input pipeline, the
translation step, the training comparison; one that would start after the settings' deadline
is listed under `skipped`. `--data` (default: the bundle's `data/`) needs train.npz and
test.npz; where it is missing, the command fails with one `error:` line before anything runs.
"""
import argparse
import datetime
import json
import os
import sys
import tempfile
import time

from benchmarks.device_check import bundle
from benchmarks.device_check import environment
from benchmarks.device_check import report
from benchmarks.device_check import settings as settings_lib
from benchmarks.device_check import steps
from benchmarks.device_check import training
from sdd_jax.errors import UserError


def check(args) -> dict:
  settings = settings_lib.SMOKE if args.smoke else settings_lib.FULL
  training.validate(settings, args.data)
  start = time.time()
  deadline = start + settings.deadline_s
  env = environment.describe()
  peak, source = environment.peak(env['device_kind'], args.assume_peak_tflops)
  result = {'mode': 'smoke' if args.smoke else 'full',
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'environment': env, 'peak': {'flops_per_device': peak, 'source': source},
            'skipped': {}}
  peak_total = peak * env['device_count'] if peak else None
  result['classification'] = steps.classification(settings, peak_total, deadline)
  result['pipeline'] = training.pipeline(settings, args.data)
  ce = result['classification']['variants']['ce']['per_sec']
  result['pipeline'].update(ce_images_per_sec=ce,
                            pipeline_over_step=result['pipeline']['images_per_sec'] / ce)
  if time.time() < deadline:
    result['translation'] = steps.translation(settings, peak_total)
  else:
    result['skipped']['translation'] = 'past the time budget'
  with tempfile.TemporaryDirectory() as workdir:
    result['training'] = training.comparison(settings, args.data, workdir, deadline)
  result['environment']['memory_after'] = environment.memory_stats(
      __import__('jax').devices()[0])
  result['seconds'] = time.time() - start
  return result


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
  parser.add_argument('--out', required=True, help='folder for device_check.{json,md}')
  parser.add_argument('--smoke', action='store_true', help='tiny models, a few steps (CPU)')
  parser.add_argument('--data', default=bundle.DATA, help='folder with train.npz, test.npz')
  parser.add_argument('--assume_peak_tflops', type=float, default=0.0,
                      help='peak bf16 TFLOP/s per device for MFU where the table has none')
  args = parser.parse_args(argv)
  missing = [s for s in ('train', 'test') if not os.path.isfile(os.path.join(args.data,
                                                                            f'{s}.npz'))]
  if missing:
    print(f'error: {args.data} has no {missing[0]}.npz; make the bundle first: python -m '
          'benchmarks.device_check.bundle (or pass --data a folder with train.npz, test.npz)',
          file=sys.stderr)
    return 1
  try:
    result = check(args)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'device_check.json'), 'w', encoding='utf-8') as f:
    json.dump(result, f, indent=1, allow_nan=False)
  text = report.markdown(result)
  with open(os.path.join(args.out, 'device_check.md'), 'w', encoding='utf-8') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
