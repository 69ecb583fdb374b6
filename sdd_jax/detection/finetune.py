"""`python -m sdd_jax.detection.finetune`: Faster R-CNN on COCO 2017 from an exported ResNet
(the paper's §4.2, Table 4).

Table 4 fine-tunes Faster R-CNN + FPN with a ResNet-152 backbone pre-trained on ImageNet with
cross-entropy or with SD-Dropout, for 7 epochs (0.5x) and 12 epochs (1x), and reports COCO
val2017 mAP and mAP@0.5 (CE 31.2 / 50.6 and 39.4 / 60.1; SD-Dropout 32.5 / 52.8 and
39.8 / 60.7). The paper gives no detector recipe beyond the schedule lengths (and no code); we
read it as: only the backbone's pre-training differs between the rows. So this module hands
the exported backbone to torchvision's detector and fine-tunes it the standard way:

  python -m sdd_jax.export --workdir runs/in1k_r152_sdd --out r152_sdd.safetensors
  # one GPU
  python -m sdd_jax.detection.finetune --backbone r152_sdd.safetensors \\
      --coco_root /data/coco --schedule 1x --workdir runs/det_r152_sdd_1x
  # 8 GPUs on one host (the same global batch of 16: 2 images per GPU)
  torchrun --nproc_per_node=8 -m sdd_jax.detection.finetune --backbone r152_sdd.safetensors \\
      --coco_root /data/coco --schedule 1x --workdir runs/det_r152_sdd_1x

The model (`detector.py`): torchvision's `fasterrcnn_resnet50_fpn` construction over the
file's ResNet with FrozenBatchNorm2d and three trainable stages, the file's mean / std,
images resized to 800 / 1333. The data (`coco.py`): train2017 without the images that have no
annotations, crowd boxes dropped from the targets, horizontal flips with probability 0.5;
evaluation on all of val2017 with pycocotools' COCOeval (bbox). The schedule (`schedule.py`):
SGD, lr 0.02 x global batch / 16, momentum 0.9, weight decay 1e-4 on every trainable
parameter, linear warm-up from 1/1000 over min(1000, iterations per epoch - 1) iterations;
1x = 12 epochs with x0.1 after epochs 8 and 11; 0.5x = 7 epochs with x0.1 after epochs 5 and
6. `--batch_size` is the global batch, split evenly over the processes; the batches are plain
shuffles (no aspect-ratio grouping, which torchvision's reference adds for speed), float32
(no mixed precision).

The workdir (a local folder; only rank 0 writes):
- `detection.json`, written at the start: the arguments that define the run (the backbone's
  sha256 and config digest, schedule, batch size, lr, image sizes, the detections' score
  threshold, training images, seed). A
  re-run whose arguments differ is refused in one line; `--max_iters`, `--workers`,
  `--device` and the paths may change.
- `checkpoint.pt`, after every epoch, at `--max_iters` and on SIGTERM, written to a temporary
  file and renamed: the model, SGD's momenta, the lr scheduler, the iteration and epoch, every
  rank's torch RNG state and the wall time so far. The same command resumes from it; the data
  order is a function of (seed, epoch), so a resumed run trains as a straight one (on CPU its
  weights and momenta equal a straight run's within 1e-5: CPU kernels are not bitwise
  reproducible run to run).
- `detections_val2017.json` (COCO result records) and `results.json` after training: `kind`
  'detection', `schedule`, `epochs`, `iterations` (done), `schedule_iterations` (the full
  schedule's), `complete`, `mAP`, `mAP50`, `mAP75`, `mAP_small`, `mAP_medium`, `mAP_large`
  (COCOeval's stats x 100; null where val2017 has no box of that size), `backbone` (the
  file's metadata), `backbone_file`, `wall_seconds` (all sessions). A finished run re-run
  prints its results and writes nothing. A non-finite loss stops the run in one line.

Checked before anything is written, each problem one line `error: ...` and exit 1 (argparse's
usage and one line, exit 2, for a flag: `flags.py`): the workdir (a folder, or one that can be
made; its detection.json and results.json readable), the backbone (`detector.read_backbone`:
a safetensors file, a ResNet with the ImageNet stem, its metadata, every tensor name and shape
against torchvision's network, which a ResNet trained with another width fails, finite
values), COCO (`annotations.py`: both instances files and the header of every image used).

`--max_iters K` ends training after K iterations in all (the lr follows the full schedule) and
then evaluates, for smoke runs and the tests; `--train_images N` trains on the first N images.

Hardware, an estimate (nothing here has run on a GPU or on COCO): 1x is 12 x (117,266 // 16) =
87,948 iterations of 16 images of about 800 x 1333. Faster R-CNN R50-FPN 1x runs are commonly
reported at 5-10 hours on 8 V100s; ResNet-152 about doubles the backbone's share, so expect
roughly a day on 8 V100s, several hours on 8 A100s / H100s and about 8 times that on one GPU;
0.5x takes 7/12 of it. Run here on CPU only: the tests (64x64 images, ResNet-18, one process)
and, by hand, torchrun with 2 CPU processes (gloo): training, SIGTERM, resume, evaluation.
"""
import argparse
import functools
import hashlib
import json
import os
import signal
import sys
import time
from typing import Dict, Optional, Sequence

try:
  import torch
  import torch.distributed as dist

  from sdd_jax.detection import coco
  from sdd_jax.detection import detector
  from sdd_jax.detection import processes as processes_lib
except ModuleNotFoundError as missing:  # the optional extra is not installed
  raise SystemExit(f'error: {missing.name} is not installed; the detection recipe needs the '
                   'optional extra: pip install -r requirements-detection.txt') from None
from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.detection import flags
from sdd_jax.detection import schedule as schedule_lib
from sdd_jax.errors import UserError

# The arguments that define a run: a re-run in the same workdir must give the same.
COMPARED = ('backbone_sha256', 'config_digest', 'schedule', 'batch_size', 'lr', 'min_size',
            'max_size', 'box_score_thresh', 'train_images', 'seed')
LOG_EVERY = 20


class WorkdirMismatch(UserError):
  """The workdir holds another run, or the arguments cannot make a run."""


class Diverged(UserError):
  """The loss became NaN or infinite (torchvision's reference stops there too)."""


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with workdir_path.path(path).open('rb') as f:  # a local path or a gs:// URI
    for block in iter(lambda: f.read(1 << 24), b''):
      digest.update(block)
  return digest.hexdigest()


def _write_json(path: str, value) -> None:
  """Writes `path` whole, strict JSON (NaN and inf as null: `workdir/jsonio.py`): a temporary
  file, then a rename."""
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    f.write(jsonio.dumps(value, indent=1))
  os.replace(path + '.tmp', path)


def _read_json(path: str, *required: str) -> dict:
  """A JSON object this recipe wrote, with the `required` keys; WorkdirMismatch (one line)
  when it cannot be read or is something else."""
  cause = 'not the object this recipe writes'
  try:
    with open(path, encoding='utf-8') as f:
      value = json.load(f)
  except (OSError, ValueError) as e:
    value, cause = None, f'{type(e).__name__}: {getattr(e, "strerror", None) or e}'
  if not isinstance(value, dict) or not all(k in value for k in required):
    raise WorkdirMismatch(f'{path} cannot be read ({cause}); the workdir holds something '
                          'else: give another --workdir')
  return value


def check_workdir(workdir: str) -> None:
  """WorkdirMismatch (one line) unless `workdir` (absolute) is a folder, or can be made one."""
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise WorkdirMismatch(f'--workdir {workdir}: {existing} is a file, not a folder; give '
                          'another --workdir')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise WorkdirMismatch(f'--workdir {workdir}: {existing} is not writable; give a --workdir '
                          'you can write')


def _record(args, metadata: Dict[str, str], lr: float) -> dict:
  """detection.json: what defines the run (COMPARED) and where its inputs were."""
  return {'backbone': str(workdir_path.path(args.backbone)),
          'backbone_sha256': _sha256(args.backbone),
          'config_digest': metadata.get('config_digest'), 'schedule': args.schedule,
          'batch_size': args.batch_size, 'lr': lr, 'min_size': args.min_size,
          'max_size': args.max_size, 'box_score_thresh': args.box_score_thresh,
          'train_images': args.train_images, 'seed': args.seed,
          'coco_root': os.path.abspath(args.coco_root)}


def check_record(workdir: str, record: dict) -> None:
  """Raises WorkdirMismatch (one line) when `workdir` holds a run of other arguments."""
  path = os.path.join(workdir, 'detection.json')
  if not os.path.exists(path):
    return
  recorded = _read_json(path)
  changed = [f'{k} {recorded.get(k)!r} -> {record[k]!r}' for k in COMPARED
             if recorded.get(k) != record[k]]
  if changed:
    raise WorkdirMismatch(f'--workdir {workdir} holds a run with other arguments '
                          f'({"; ".join(changed)}); give the same arguments to resume it, '
                          'or another --workdir')


def _summary(workdir: str, results: dict) -> str:
  metrics = ' '.join(f'{k} {results[k]:.1f}' if results[k] is not None else f'{k} -'
                     for k in coco.METRICS)
  return (f'{workdir}: {results["schedule"]} schedule, {results["iterations"]}/'
          f'{results["schedule_iterations"]} iterations: {metrics}')


def finetune(args: argparse.Namespace) -> Optional[dict]:
  """Trains (or resumes) and evaluates; returns results.json's contents, None when stopped by
  SIGTERM (the checkpoint is saved). UserError (one line) before anything is written."""
  started = time.time()
  if '://' in args.workdir:
    raise WorkdirMismatch(f'--workdir {args.workdir}: the detection recipe writes local '
                          'folders only; give a local path')
  workdir = os.path.abspath(args.workdir)
  check_workdir(workdir)
  if args.device == 'cuda' and not torch.cuda.is_available():
    raise WorkdirMismatch('--device cuda: torch sees no CUDA GPU here; give --device cpu or '
                          'run where a GPU is visible')
  arrays, metadata = detector.read_backbone(args.backbone)
  coco.check_root(args.coco_root)
  processes = processes_lib.Processes(args.device)
  if args.batch_size % processes.world:
    raise WorkdirMismatch(f'--batch_size {args.batch_size} does not split over '
                          f'{processes.world} processes; give a multiple of {processes.world}')
  plan = schedule_lib.SCHEDULES[args.schedule]
  lr = schedule_lib.linear_scaled_lr(args.batch_size) if args.lr == 'auto' else args.lr
  record = _record(args, metadata, lr)
  check_record(workdir, record)
  train_set = coco.CocoBoxes(args.coco_root, 'train2017', train=True, seed=args.seed,
                             limit=args.train_images)
  if not train_set.ids:
    raise coco.CocoMissing(f'{coco.split_paths(args.coco_root, "train2017")["annotations"]} '
                           'has no image with a box wider and taller than 1 pixel; give COCO '
                           '2017\'s instances_train2017.json')
  per_epoch = len(train_set) // args.batch_size
  if per_epoch == 0:
    raise WorkdirMismatch(f'{len(train_set)} training images make no batch of '
                          f'{args.batch_size}; give a smaller --batch_size')
  val_set = coco.CocoBoxes(args.coco_root, 'val2017', train=False)
  if not val_set.ids:
    raise coco.CocoMissing(f'{coco.split_paths(args.coco_root, "val2017")["annotations"]} '
                           'lists no image to evaluate on; give COCO 2017\'s '
                           'instances_val2017.json')
  total = plan.epochs * per_epoch
  end = min(total, args.max_iters) if args.max_iters else total
  results_path = os.path.join(workdir, 'results.json')
  if os.path.exists(results_path):
    results = _read_json(results_path, 'iterations', 'schedule', 'schedule_iterations',
                         *coco.METRICS)
    if results['iterations'] >= end:
      if processes.main:
        print(_summary(workdir, results))
      return results
  if processes.main:
    os.makedirs(workdir, exist_ok=True)
    if not os.path.exists(os.path.join(workdir, 'detection.json')):
      _write_json(os.path.join(workdir, 'detection.json'), record)
  processes.barrier()

  torch.manual_seed(args.seed)
  model = detector.create_detector(arrays, metadata, coco.num_classes(train_set.coco),
                                   args.min_size, args.max_size,
                                   args.box_score_thresh).to(processes.device)
  optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr,
                              momentum=schedule_lib.MOMENTUM,
                              weight_decay=schedule_lib.WEIGHT_DECAY)
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
      schedule_lib.lr_factor, iterations_per_epoch=per_epoch, schedule=plan))
  iteration, wall = 0, 0.0
  checkpoint_path = os.path.join(workdir, 'checkpoint.pt')
  if os.path.exists(checkpoint_path):
    state = torch.load(checkpoint_path, map_location='cpu', weights_only=True)
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['lr_scheduler'])
    iteration, wall = state['iteration'], state['wall_seconds']
    if len(state['rng']) == processes.world:
      processes_lib.set_rng_state(state['rng'][processes.rank], processes)
    else:  # another process count: fresh draws for the samplers of the heads
      torch.manual_seed(args.seed + 1000 * iteration + processes.rank)
    if processes.main:
      print(f'resumed {workdir} at iteration {iteration}', flush=True)
  train_model = model
  if processes.distributed:
    train_model = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[processes.device] if processes.device.type == 'cuda' else None)

  def save():
    rng = processes.gather(processes_lib.rng_state(processes))
    if processes.main:
      torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                  'lr_scheduler': scheduler.state_dict(), 'iteration': iteration,
                  'epoch': iteration // per_epoch, 'rng': rng,
                  'wall_seconds': wall + time.time() - started}, checkpoint_path + '.tmp')
      os.replace(checkpoint_path + '.tmp', checkpoint_path)

  stop = {'requested': False}
  previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
  try:
    train_model.train()
    per_process = args.batch_size // processes.world
    while iteration < end:
      epoch, position = divmod(iteration, per_epoch)
      train_set.epoch = epoch
      sampler = torch.utils.data.DistributedSampler(
          train_set, num_replicas=processes.world, rank=processes.rank, shuffle=True,
          seed=args.seed)
      sampler.set_epoch(epoch)
      order = list(sampler)
      batches = [order[i * per_process:(i + 1) * per_process]
                 for i in range(position, min(per_epoch, position + end - iteration))]
      loader = torch.utils.data.DataLoader(
          train_set, batch_sampler=batches, num_workers=args.workers, collate_fn=coco.collate,
          generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
      tic, first = time.time(), iteration
      for images, targets in loader:
        images = [image.to(processes.device) for image in images]
        targets = [{k: v.to(processes.device) if torch.is_tensor(v) else v
                    for k, v in t.items()} for t in targets]
        losses = train_model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
          raise Diverged(f'the loss is {loss.item()} at iteration {iteration + 1} ('
                         + ', '.join(f'{k} {v.item():.4g}' for k, v in losses.items())
                         + '); lower --lr (in a new --workdir: the arguments are recorded) '
                         'or check the backbone file')
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        iteration += 1
        if processes.main and (iteration % LOG_EVERY == 0 or iteration in (1, end)):
          print(f'iteration {iteration}/{end} epoch {epoch + 1}/{plan.epochs} lr '
                f'{optimizer.param_groups[0]["lr"]:.6f} loss {loss.item():.4f} ('
                + ', '.join(f'{k} {v.item():.4f}' for k, v in losses.items())
                + f') {(time.time() - tic) / (iteration - first):.2f} s/it', flush=True)
        stopping = processes.any(stop['requested'])
        if stopping or iteration == end or iteration % per_epoch == 0:
          save()
        if stopping:
          if processes.main:
            print(f'SIGTERM: saved {checkpoint_path} at iteration {iteration}; run the same '
                  'command to resume', flush=True)
          return None
  finally:
    signal.signal(signal.SIGTERM, previous)

  detections = evaluate(model, val_set, processes)
  results = None
  if processes.main:
    _write_json(os.path.join(workdir, 'detections_val2017.json'), detections['records'])
    results = {'kind': 'detection', 'schedule': args.schedule, 'epochs': plan.epochs,
               'iterations': iteration, 'schedule_iterations': total,
               'complete': iteration == total, **detections['metrics'],
               'backbone': metadata, 'backbone_file': str(workdir_path.path(args.backbone)),
               'wall_seconds': round(wall + time.time() - started, 1)}
    _write_json(results_path, results)
    print(_summary(workdir, results), flush=True)
  processes.barrier()
  return results


@torch.inference_mode()
def evaluate(model, val_set: coco.CocoBoxes, processes: processes_lib.Processes) -> dict:
  """Detections on all of val2017 (each process a share, one image at a time, as torchvision's
  reference); on rank 0 {'records': COCO result records, 'metrics': COCOeval's}."""
  model.eval()
  share = list(range(processes.rank, len(val_set), processes.world))
  loader = torch.utils.data.DataLoader(torch.utils.data.Subset(val_set, share), batch_size=1,
                                       collate_fn=coco.collate)
  records = []
  for images, targets in loader:
    outputs = model([image.to(processes.device) for image in images])
    for target, output in zip(targets, outputs):
      records += coco.detection_records(target['image_id'], output)
  records = [r for part in processes.gather(records) for r in part]
  if not processes.main:
    return {}
  return {'records': records, 'metrics': coco.evaluate_detections(val_set.coco, records)}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """The flags (`flags.py`); a bad value exits 2 with argparse's one line."""
  return flags.parse_args(argv, __doc__.split('\n\n')[0],
                          'cuda' if torch.cuda.is_available() else 'cpu')


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  try:
    finetune(args)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  finally:
    if dist.is_initialized():
      dist.destroy_process_group()
  return 0


if __name__ == '__main__':
  sys.exit(main())
