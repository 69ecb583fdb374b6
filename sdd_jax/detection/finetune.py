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
except ModuleNotFoundError as missing:  # the optional extra is not installed
  raise SystemExit(f'error: {missing.name} is not installed; the detection recipe needs the '
                   'optional extra: pip install -r requirements-detection.txt') from None
from sdd_jax.workdir import paths as workdir_path
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


def _lr(text: str):
  """--lr: 'auto' or a positive number (argparse reports anything else in one line)."""
  if text == 'auto':
    return text
  try:
    value = float(text)
  except ValueError:
    value = 0.0
  if not value > 0:
    raise argparse.ArgumentTypeError(f"{text!r}: give 'auto' or a number > 0")
  return value


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.detection.finetune',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--backbone', required=True, help='a ResNet .safetensors file written by '
                      'python -m sdd_jax.export')
  parser.add_argument('--coco_root', required=True, help='holds train2017/, val2017/, '
                      'annotations/')
  parser.add_argument('--schedule', required=True, choices=sorted(schedule_lib.SCHEDULES))
  parser.add_argument('--workdir', required=True, help='a local folder')
  parser.add_argument('--batch_size', type=int, default=16, help='global batch (all GPUs)')
  parser.add_argument('--lr', default='auto', type=_lr,
                      help="'auto' = 0.02 x batch_size / 16, or a number")
  parser.add_argument('--workers', type=int, default=4, help='data loader processes per GPU')
  parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                      choices=('cpu', 'cuda'))
  parser.add_argument('--max_iters', type=int, default=0, help='end training after this many '
                      'iterations in all (0: the schedule\'s)')
  parser.add_argument('--train_images', type=int, default=0, help='train on the first N images')
  parser.add_argument('--min_size', type=int, default=800)
  parser.add_argument('--max_size', type=int, default=1333)
  parser.add_argument('--box_score_thresh', type=float, default=0.05,
                      help='evaluation drops detections scoring below it (torchvision\'s 0.05)')
  parser.add_argument('--seed', type=int, default=0)
  return parser.parse_args(argv)


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with workdir_path.path(path).open('rb') as f:  # a local path or a gs:// URI
    for block in iter(lambda: f.read(1 << 24), b''):
      digest.update(block)
  return digest.hexdigest()


def _write_json(path: str, value) -> None:
  """Writes `path` whole: a temporary file, then a rename."""
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    json.dump(value, f, indent=1)
  os.replace(path + '.tmp', path)


def _read_json(path: str):
  with open(path, encoding='utf-8') as f:
    return json.load(f)


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


class _Processes:
  """This process's place: rank, world size, device; the process group under torchrun."""

  def __init__(self, device: str):
    self.distributed = 'WORLD_SIZE' in os.environ
    self.rank = int(os.environ.get('RANK', 0))
    self.world = int(os.environ.get('WORLD_SIZE', 1))
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    self.device = torch.device(f'cuda:{local_rank}' if device == 'cuda' else 'cpu')
    if device == 'cuda':
      torch.cuda.set_device(self.device)
    if self.distributed and not dist.is_initialized():
      dist.init_process_group('nccl' if device == 'cuda' else 'gloo')

  @property
  def main(self) -> bool:
    return self.rank == 0

  def barrier(self):
    if self.distributed:
      dist.barrier()

  def gather(self, value) -> list:
    """[value of rank 0, rank 1, ...] on every process."""
    if not self.distributed:
      return [value]
    values = [None] * self.world
    dist.all_gather_object(values, value)
    return values

  def any(self, flag: bool) -> bool:
    if not self.distributed:
      return flag
    value = torch.tensor(float(flag), device=self.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _rng_state(processes: _Processes) -> dict:
  state = {'torch': torch.get_rng_state()}
  if processes.device.type == 'cuda':
    state['cuda'] = torch.cuda.get_rng_state(processes.device)
  return state


def _set_rng_state(state: dict, processes: _Processes) -> None:
  torch.set_rng_state(state['torch'])
  if 'cuda' in state and processes.device.type == 'cuda':
    torch.cuda.set_rng_state(state['cuda'], processes.device)


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
  arrays, metadata = detector.read_backbone(args.backbone)
  coco.check_root(args.coco_root)
  processes = _Processes(args.device)
  if args.batch_size % processes.world:
    raise WorkdirMismatch(f'--batch_size {args.batch_size} does not split over '
                          f'{processes.world} processes; give a multiple of {processes.world}')
  plan = schedule_lib.SCHEDULES[args.schedule]
  lr = schedule_lib.linear_scaled_lr(args.batch_size) if args.lr == 'auto' else args.lr
  record = _record(args, metadata, lr)
  workdir = os.path.abspath(args.workdir)
  check_record(workdir, record)
  train_set = coco.CocoBoxes(args.coco_root, 'train2017', train=True, seed=args.seed,
                             limit=args.train_images)
  per_epoch = len(train_set) // args.batch_size
  if per_epoch == 0:
    raise WorkdirMismatch(f'{len(train_set)} training images make no batch of '
                          f'{args.batch_size}; give a smaller --batch_size')
  total = plan.epochs * per_epoch
  end = min(total, args.max_iters) if args.max_iters else total
  results_path = os.path.join(workdir, 'results.json')
  if os.path.exists(results_path):
    results = _read_json(results_path)
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
      _set_rng_state(state['rng'][processes.rank], processes)
    else:  # another process count: fresh draws for the samplers of the heads
      torch.manual_seed(args.seed + 1000 * iteration + processes.rank)
    if processes.main:
      print(f'resumed {workdir} at iteration {iteration}', flush=True)
  train_model = model
  if processes.distributed:
    train_model = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[processes.device] if processes.device.type == 'cuda' else None)

  def save():
    rng = processes.gather(_rng_state(processes))
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

  detections = evaluate(model, args.coco_root, processes)
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
def evaluate(model, coco_root: str, processes: _Processes) -> dict:
  """Detections on all of val2017 (each process a share, one image at a time, as torchvision's
  reference); on rank 0 {'records': COCO result records, 'metrics': COCOeval's}."""
  val_set = coco.CocoBoxes(coco_root, 'val2017', train=False)
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
