"""The detection recipe (sdd_jax/detection) on a synthetic COCO-format data set, on CPU.

A dozen 64x64 images with coloured rectangles (category ids 1, 3, 5: not contiguous, as
COCO's) and their instances JSON, and a ResNet-18 backbone file in the exporter's layout and
metadata. Checked against independent references: the lr by hand, the detector's backbone
against the file's arrays, the targets and flips by hand, COCOeval on hand-made detections,
results.json against pycocotools run directly on the written detections, and a run stopped by
SIGTERM after two iterations and resumed against a straight three-iteration run (every
parameter and momentum equal up to CPU float noise).

Needs the optional extra (`pip install -r requirements-detection.txt`); skipped without it.
"""
import json
import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image
from safetensors import numpy as safetensors_numpy

torch = pytest.importorskip('torch', reason='the detection recipe needs the optional extra: '
                            'pip install -r requirements-detection.txt')
pytest.importorskip('torchvision')
pytest.importorskip('pycocotools')

from pycocotools import coco as coco_lib  # noqa: E402
from torchvision import datasets  # noqa: E402
from torchvision.transforms.v2 import functional as v2_functional  # noqa: E402
from pycocotools import cocoeval  # noqa: E402

from sdd_jax import models  # noqa: E402
from sdd_jax.detection import coco  # noqa: E402
from sdd_jax.detection import detector  # noqa: E402
from sdd_jax.detection import finetune  # noqa: E402
from sdd_jax.detection import schedule  # noqa: E402
from sdd_jax.models import torchvision_io  # noqa: E402
from tests import workdirs  # noqa: E402

COLOURS = {1: (220, 30, 30), 3: (30, 200, 30), 5: (30, 30, 220)}
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]  # not torchvision's defaults
# Training images: (boxes x, y, w, h with a category, crowd flags). Image 7 has only a crowd
# box, image 8 nothing.
TRAIN = {1: [(4, 6, 30, 20, 1), (40, 30, 18, 28, 3)], 2: [(10, 10, 40, 40, 5)],
         3: [(0, 0, 24, 24, 3), (30, 36, 30, 20, 1)], 4: [(20, 8, 36, 16, 5)],
         5: [(8, 30, 20, 30, 1)], 6: [(12, 12, 34, 34, 3), (50, 2, 12, 12, 5)],
         7: [(5, 5, 50, 50, 1, 'crowd')], 8: []}
VAL = {101: [(6, 6, 30, 30, 1)], 102: [(20, 20, 36, 24, 3), (2, 40, 16, 16, 5)],
       103: [(30, 4, 28, 40, 5)], 104: [(10, 28, 44, 30, 1)]}


def _write_split(root, split, spec):
  os.makedirs(root / split)
  images, annotations = [], []
  rng = np.random.default_rng(len(spec))
  for image_id, boxes in spec.items():
    pixels = rng.integers(90, 140, size=(64, 64, 3)).astype(np.uint8)
    for x, y, w, h, category, *_ in boxes:
      pixels[y:y + h, x:x + w] = COLOURS[category]
    name = f'{image_id:012d}.png'
    Image.fromarray(pixels).save(root / split / name)
    images.append({'id': image_id, 'file_name': name, 'width': 64, 'height': 64})
    for x, y, w, h, category, *crowd in boxes:
      annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                          'category_id': category, 'bbox': [x, y, w, h], 'area': w * h,
                          'iscrowd': int(bool(crowd)), 'segmentation': []})
  os.makedirs(root / 'annotations', exist_ok=True)
  with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': [{'id': c, 'name': str(c)} for c in COLOURS]}, f)


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('coco')
  _write_split(root, 'train2017', TRAIN)
  _write_split(root, 'val2017', VAL)
  return str(root)


def _backbone_file(path, name, **model_kwargs):
  """Our `name` (a Flax ResNet at random weights and BatchNorm statistics; `model_kwargs` such
  as `width` override its defaults) written as `python -m sdd_jax.export` writes it:
  torchvision's layout plus the exporter's metadata."""
  model = models.get_model(name, num_classes=10, **model_kwargs)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, 32, 32, 3)),
                                             train=False))
  rng = np.random.default_rng(0)

  def draw(path_, leaf):
    kind = path_[-1].key
    if kind == 'kernel':
      return rng.normal(0, np.sqrt(2 / np.prod(leaf.shape[:-1])), leaf.shape).astype(np.float32)
    if kind == 'var':
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    return rng.normal(1.0 if kind == 'scale' else 0.0, 0.1, leaf.shape).astype(np.float32)

  variables = jax.tree_util.tree_map_with_path(draw, shapes)
  arrays = torchvision_io.to_torchvision(name, variables, step=5)
  metadata = {'model': name, 'torchvision_model': torchvision_io.torchvision_name(name),
              'step': '5', 'config_digest': 'abc', 'num_classes': '10', 'member': '0',
              'stem': 'cifar' if name.endswith('_cifar') else 'imagenet',
              'input': 'RGB, NCHW, pixels in [0, 1], then (x - mean) / std',
              'mean': json.dumps(MEAN), 'std': json.dumps(STD)}
  with open(path, 'wb') as f:
    f.write(safetensors_numpy.save(arrays, metadata=metadata))
  return str(path)


@pytest.fixture(scope='module')
def backbone(tmp_path_factory):
  return _backbone_file(tmp_path_factory.mktemp('backbone') / 'r18.safetensors', 'resnet18')


def _argv(backbone_file, coco_root, workdir, max_iters, schedule_name='0.5x'):
  return ['--backbone', backbone_file, '--coco_root', coco_root, '--schedule', schedule_name,
          '--workdir', str(workdir), '--batch_size', '1', '--workers', '0', '--device', 'cpu',
          '--max_iters', str(max_iters), '--train_images', '3', '--min_size', '64',
          '--max_size', '64', '--box_score_thresh', '0']  # every image gets its top 100


def test_the_lr_schedule_by_hand():
  plan, per_epoch = schedule.SCHEDULES['1x'], 7329  # COCO: 117266 images // 16
  iterations = (0, 500, 999, 1000, 8 * 7329 - 1, 8 * 7329, 11 * 7329, 12 * 7329 - 1)
  lrs = [0.02 * schedule.lr_factor(i, per_epoch, plan) for i in iterations]
  by_hand = [0.02 / 1000, 0.02 * (0.001 + 0.999 * 500 / 1000),
             0.02 * (0.001 + 0.999 * 999 / 1000), 0.02, 0.02, 0.002, 0.0002, 0.0002]
  np.testing.assert_allclose(lrs, by_hand, rtol=1e-12)
  half = schedule.SCHEDULES['0.5x']
  assert half.epochs == 7 and [schedule.lr_factor(e * 100, 100, half) for e in (4, 5, 6)] == [
      1.0, pytest.approx(0.1), pytest.approx(0.01)]
  assert schedule.warmup_iterations(2) == 1 and schedule.lr_factor(0, 2, half) == 0.001
  assert schedule.linear_scaled_lr(2) == 0.0025 and schedule.linear_scaled_lr(64) == 0.08


def test_the_detector_holds_the_files_backbone_frozen_below_layer2(backbone):
  arrays, metadata = detector.read_backbone(backbone)
  model = detector.create_detector(arrays, metadata, num_classes=6, min_size=64, max_size=64)
  body = model.backbone.body.state_dict()
  compared = [k for k in arrays if not k.startswith('fc.') and 'num_batches' not in k]
  assert len(compared) == 100  # resnet18: 20 convs + 20 BatchNorms x 4
  for key in compared:
    np.testing.assert_array_equal(body[key].numpy(), arrays[key])
  trainable = {k.split('.')[0] for k, p in model.backbone.body.named_parameters()
               if p.requires_grad}
  assert trainable == {'layer2', 'layer3', 'layer4'}  # BatchNorms frozen: buffers, not params
  assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
  assert model.transform.image_mean == MEAN and model.transform.image_std == STD
  assert model.roi_heads.box_predictor.cls_score.out_features == 6


def test_the_targets_follow_torchvisions_reference(coco_root):
  train = coco.CocoBoxes(coco_root, 'train2017', train=True, seed=0)
  assert train.ids == [1, 2, 3, 4, 5, 6, 7]  # 8 has no annotation; 7 (crowd only) stays
  assert coco.num_classes(train.coco) == 6
  _, crowd = train[6]
  assert crowd['boxes'].shape == (0, 4) and crowd['labels'].tolist() == []
  train.epoch = next(e for e in range(20) if not coco.flips(0, e, 1))
  image, target = train[0]
  assert target['boxes'].tolist() == [[4, 6, 34, 26], [40, 30, 58, 58]]
  assert target['labels'].tolist() == [1, 3] and target['image_id'] == 1
  np.testing.assert_allclose(image[:, 10, 10].numpy(), np.array(COLOURS[1]) / 255, rtol=1e-6)
  train.epoch = next(e for e in range(20) if coco.flips(0, e, 1))
  flipped, target = train[0]
  assert target['boxes'].tolist() == [[64 - 34, 6, 64 - 4, 26], [64 - 58, 30, 64 - 40, 58]]
  np.testing.assert_array_equal(flipped.numpy(), image.flip(-1).numpy())
  assert len(coco.CocoBoxes(coco_root, 'val2017', train=False)) == 4
  # torchvision's own COCO target conversion and box flip agree on the images without crowds.
  reference = datasets.wrap_dataset_for_transforms_v2(datasets.CocoDetection(
      os.path.join(coco_root, 'train2017'),
      os.path.join(coco_root, 'annotations', 'instances_train2017.json')))
  for index in range(6):
    _, want = reference[index]
    for epoch in (0, 1, 2, 3):
      train.epoch = epoch
      _, got = train[index]
      boxes = (v2_functional.horizontal_flip(want['boxes'])
               if coco.flips(0, epoch, got['image_id']) else want['boxes'])
      assert got['image_id'] == want['image_id']
      np.testing.assert_array_equal(got['boxes'].numpy(), boxes.numpy().astype(np.float32))
      assert got['labels'].tolist() == want['labels'].tolist()


def test_cocoeval_on_hand_made_detections(coco_root):
  truth = coco.CocoBoxes(coco_root, 'val2017', train=False).coco
  exact = [{'image_id': i, 'category_id': box[4], 'bbox': list(box[:4]), 'score': 0.9}
           for i, boxes in VAL.items() for box in boxes]
  metrics = coco.evaluate_detections(truth, exact)
  assert metrics['mAP'] == metrics['mAP50'] == metrics['mAP75'] == pytest.approx(100)
  assert metrics['mAP_large'] is None  # no ground-truth box above 96x96
  # Each box widened by 1/2 of its width: IoU 1/1.5 = 0.67, between 0.5 and 0.75.
  wide = [dict(d, bbox=[d['bbox'][0], d['bbox'][1], d['bbox'][2] * 1.5, d['bbox'][3]])
          for d in exact]
  metrics = coco.evaluate_detections(truth, wide)
  assert (metrics['mAP50'], metrics['mAP75']) == (pytest.approx(100), 0)
  assert coco.evaluate_detections(truth, [])['mAP50'] == 0


def _state(workdir):
  return torch.load(os.path.join(workdir, 'checkpoint.pt'), weights_only=True)


def test_three_iterations_evaluate_and_a_sigterm_stopped_run_resumes_as_a_straight_one(
    backbone, coco_root, tmp_path, capsys, monkeypatch):
  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  # 3 images at batch 1: 3 iterations an epoch, lr x0.001, x0.5005, x1 (warm-up of 2), so
  # the 2 iterations before the stop move the weights well above float32 noise.
  handler = signal.getsignal(signal.SIGTERM)
  assert finetune.main(_argv(backbone, coco_root, straight, 3)) == 0
  # The other run gets SIGTERM while its second batch is read: it finishes that iteration,
  # saves the checkpoint and stops without evaluating; the same command resumes it.
  batches, collate = [], coco.collate

  def collate_then_sigterm(batch):
    batches.append(batch)
    if len(batches) == 2:
      signal.raise_signal(signal.SIGTERM)
    return collate(batch)

  monkeypatch.setattr(coco, 'collate', collate_then_sigterm)
  assert finetune.main(_argv(backbone, coco_root, resumed, 3)) == 0
  assert f'SIGTERM: saved {resumed}/checkpoint.pt at iteration 2' in capsys.readouterr().out
  assert _state(resumed)['iteration'] == 2 and not (resumed / 'results.json').exists()
  monkeypatch.undo()
  assert signal.getsignal(signal.SIGTERM) == handler  # put back
  assert finetune.main(_argv(backbone, coco_root, resumed, 3)) == 0
  assert f'resumed {resumed} at iteration 2' in capsys.readouterr().out
  a, b = _state(straight), _state(resumed)
  assert a['iteration'] == b['iteration'] == 3 and a['epoch'] == 1
  # CPU kernels (oneDNN's convolutions) are not bitwise reproducible from run to run: two
  # straight runs differed by up to 3e-8 of a momentum buffer's largest value (measured). A
  # restore that missed the momenta, the RNG state or the data order moves them by O(1).
  def assert_near(got, want, name):
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()),
                               msg=name)

  for key, value in a['model'].items():
    assert_near(b['model'][key], value, key)
  assert len(a['optimizer']['state']) == len(b['optimizer']['state']) > 0
  for i, value in a['optimizer']['state'].items():
    assert_near(b['optimizer']['state'][i]['momentum_buffer'], value['momentum_buffer'], i)
  assert a['lr_scheduler']['last_epoch'] == 3
  arrays, _ = torchvision_io.read(backbone)
  np.testing.assert_array_equal(a['model']['backbone.body.conv1.weight'].numpy(),
                                arrays['conv1.weight'])  # frozen
  assert not np.array_equal(a['model']['backbone.body.layer4.1.conv2.weight'].numpy(),
                            arrays['layer4.1.conv2.weight'])  # trained

  results = workdirs.strict_json(straight / 'results.json')
  assert (results['kind'], results['schedule'], results['epochs'], results['iterations'],
          results['schedule_iterations'], results['complete']) == (
              'detection', '0.5x', 7, 3, 21, False)
  assert results['backbone'] == torchvision_io.read(backbone)[1]
  assert results['backbone_file'] == backbone and results['wall_seconds'] > 0
  # COCOeval run here on the written detections gives results.json's numbers.
  truth = coco_lib.COCO(os.path.join(coco_root, 'annotations', 'instances_val2017.json'))
  with open(straight / 'detections_val2017.json') as f:
    detections = json.load(f)
  assert {d['image_id'] for d in detections} == set(VAL)
  assert {tuple(sorted(d)) for d in detections} == {('bbox', 'category_id', 'image_id', 'score')}
  boxes = np.array([d['bbox'] for d in detections])  # x, y, w, h inside the 64x64 images
  assert (boxes >= 0).all() and (boxes[:, :2] + boxes[:, 2:] <= 64 + 1e-6).all()
  check = cocoeval.COCOeval(truth, truth.loadRes(detections), 'bbox')
  check.evaluate()
  check.accumulate()
  check.summarize()
  assert [results[k] for k in ('mAP', 'mAP50', 'mAP75', 'mAP_small', 'mAP_medium')] == [
      pytest.approx(100 * s) for s in check.stats[:5]]
  assert results['mAP_large'] is None and check.stats[5] == -1
  # A finished run re-run changes nothing and prints its results.
  before = workdirs.snapshot(straight)
  capsys.readouterr()
  assert finetune.main(_argv(backbone, coco_root, straight, 3)) == 0
  assert capsys.readouterr().out.startswith(f'{straight}: 0.5x schedule, 3/21 iterations: mAP ')
  assert workdirs.snapshot(straight) == before
  # Other arguments in the same workdir: one line, nothing written.
  assert finetune.main(_argv(backbone, coco_root, straight, 3, schedule_name='1x')) == 1
  assert capsys.readouterr().err == (
      f"error: --workdir {straight} holds a run with other arguments (schedule '0.5x' -> '1x'); "
      'give the same arguments to resume it, or another --workdir\n')
  assert workdirs.snapshot(straight) == before


def test_missing_coco_a_cifar_stem_and_divergence_are_one_line(backbone, coco_root,
                                                                      tmp_path, capsys):
  workdir = tmp_path / 'run'
  empty = tmp_path / 'no_coco'
  empty.mkdir()
  assert finetune.main(_argv(backbone, str(empty), workdir, 2)) == 1
  assert capsys.readouterr().err == (
      f'error: COCO 2017 is not in --coco_root {empty}: {empty}/train2017 is missing; download '
      'http://images.cocodataset.org/zips/train2017.zip, '
      'http://images.cocodataset.org/zips/val2017.zip and '
      'http://images.cocodataset.org/annotations/annotations_trainval2017.zip and unzip them in '
      f'{empty} (giving train2017/, val2017/ and annotations/instances_{{train,val}}2017.json)\n')
  cifar = _backbone_file(tmp_path / 'cifar.safetensors', 'resnet18_cifar')
  assert finetune.main(_argv(cifar, coco_root, workdir, 2)) == 1
  err = capsys.readouterr().err
  assert err.startswith(f'error: {cifar}: resnet18_cifar has a cifar stem') and err.count('\n') == 1
  assert not workdir.exists()
  # A diverging run (lr 1e9) stops in one line at the first non-finite loss.
  assert finetune.main(_argv(backbone, coco_root, workdir, 3) + ['--lr', '1e9']) == 1
  err = capsys.readouterr().err
  assert re.fullmatch(r'error: the loss is (nan|inf) at iteration 2 \(loss_classifier .*\); '
                      r'lower --lr \(in a new --workdir: the arguments are recorded\) or check '
                      r'the backbone file\n', err), err
  assert sorted(os.listdir(workdir)) == ['detection.json']


def test_import_sdd_jax_does_not_import_torch():
  # (tests/packaging_test.py checks that no module outside sdd_jax/detection imports torch.)
  code = ('import sys, sdd_jax, sdd_jax.detection, sdd_jax.detection.schedule\n'
          'print(sorted(m for m in ("torch", "torchvision", "pycocotools") if m in sys.modules))')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__)))))
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == '[]'
