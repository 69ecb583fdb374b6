"""The bad-input catalogue of `python -m sdd_jax.detection.finetune`: backbone files, COCO
annotation files and images, numeric flags and workdirs.

Each case calls `finetune.main(argv)` in-process and asserts one line and no trace: exit 1 with
one `error: ...` line naming the file or flag (argparse's usage and one error line with exit 2
for flags), no traceback, an existing workdir byte-identical and none created where there was
none. Generated from the contracts: the parser's numeric types (every bound, non-numbers,
NaN and infinity), the metadata keys the detector reads, every key `annotations.FIELDS`
requires (removed, in each split), and the reader's layers (file, JSON, structure, cross
references, images). Nothing here trains: every case is refused before a model is built.
"""
import json
import os
import re
import shutil

import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

torch = pytest.importorskip('torch', reason='the detection recipe needs the optional extra: '
                            'pip install -r requirements-detection.txt')
pytest.importorskip('torchvision')
pytest.importorskip('pycocotools')

from sdd_jax.detection import annotations  # noqa: E402
from sdd_jax.detection import finetune  # noqa: E402
from sdd_jax.detection import flags  # noqa: E402
from tests import workdirs  # noqa: E402
from tests.detection import finetune_test as synthetic  # noqa: E402

PROG = 'python -m sdd_jax.detection.finetune'


@pytest.fixture(scope='module')
def good(tmp_path_factory):
  """{'backbone', 'coco_root', 'existing', 'arrays', 'metadata'}: a ResNet-18 file, the
  synthetic COCO set, a workdir that exists (a folder with a user's file), and the file's
  tensors and metadata as safetensors itself reads them."""
  root = tmp_path_factory.mktemp('good')
  coco_root = root / 'coco'
  synthetic._write_split(coco_root, 'train2017', synthetic.TRAIN)
  synthetic._write_split(coco_root, 'val2017', synthetic.VAL)
  backbone = synthetic._backbone_file(root / 'r18.safetensors', 'resnet18')
  with open(backbone, 'rb') as f:
    data = f.read()
  header = json.loads(data[8:8 + int.from_bytes(data[:8], 'little')])
  existing = root / 'existing'
  existing.mkdir()
  (existing / 'notes.txt').write_text('a folder the user made\n')
  return {'backbone': backbone, 'coco_root': str(coco_root), 'existing': str(existing),
          'arrays': safetensors_numpy.load(data), 'metadata': header['__metadata__']}


def _argv(good, **flags_):
  values = {'backbone': good['backbone'], 'coco_root': good['coco_root'], 'schedule': '0.5x',
            'batch_size': '1', 'workers': '0', 'device': 'cpu', 'max_iters': '1',
            'train_images': '3', 'min_size': '64', 'max_size': '64'}
  values.update(flags_)
  return [a for k, v in values.items() for a in (f'--{k}', v)]


def _run(argv, capsys):
  try:
    code = finetune.main(argv)
  except SystemExit as e:
    code = e.code
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def _assert_one_line(code, out, err, message, flag=None):
  assert 'Traceback' not in out + err, err
  if flag is None:
    assert (code, out) == (1, ''), (code, out, err)
    assert err.count('\n') == 1 and err.startswith('error: '), err
    assert re.search(message, err), err
  else:  # argparse: the usage, then one error line naming the flag
    lines = err.splitlines()
    assert code == 2 and lines[0].startswith('usage: '), err
    assert [line for line in lines if 'error:' in line] == [lines[-1]], err
    assert lines[-1].startswith(f'{PROG}: error: argument --{flag}: '), err
    assert re.search(message, lines[-1]), err


def _check_refused(good, tmp_path, capsys, flag_values, message, flag=None):
  """The case refused in a fresh workdir (not created) and in an existing one (unchanged)."""
  fresh = tmp_path / 'fresh'
  _assert_one_line(*_run(_argv(good, **{'workdir': str(fresh), **flag_values}), capsys),
                   message, flag)
  assert not fresh.exists()
  before = workdirs.snapshot(good['existing'], folders=True)
  _assert_one_line(*_run(_argv(good, **{'workdir': good['existing'], **flag_values}), capsys),
                   message, flag)
  assert workdirs.snapshot(good['existing'], folders=True) == before


# --- Numeric flags: generated from the parser's types. ---------------------------------------

def _flag_cases():
  parser = flags.make_parser('', 'cpu')
  cases = []
  for action in parser._actions:  # pylint: disable=protected-access
    name = action.dest
    kind = action.type
    if hasattr(kind, 'bounds'):
      low, high = kind.bounds
      values = [str(low - 1), 'x', '2.5', ''] + ([str(high + 1)] if high is not None else [])
    elif kind is flags.fraction:
      values = ['-0.1', '1.5', 'nan', 'inf']
    elif kind is flags.learning_rate:
      values = ['0', '-1', 'nan', 'inf', 'fast']
    elif kind is flags.path:
      values = ['', ' ']
    elif action.choices:
      values = ['bogus']
    else:
      continue
    cases += [pytest.param(name, value, id=f'{name}={value!r}') for value in values]
  return cases


def test_every_flag_with_a_value_is_checked_as_it_is_parsed():
  parser = flags.make_parser('', 'cpu')
  unchecked = [a.dest for a in parser._actions  # pylint: disable=protected-access
               if a.option_strings and a.nargs != 0 and a.type is None and not a.choices]
  assert unchecked == []  # a plain int / float type would let 0, -1, nan through
  assert not [a.dest for a in parser._actions if a.type in (int, float)]  # pylint: disable=protected-access


@pytest.mark.parametrize('flag,value', _flag_cases())
def test_every_bad_flag_value_is_argparses_one_line(good, tmp_path, capsys, flag, value):
  message = (r"give 'auto' or a finite number > 0" if flag == 'lr' else
             r'invalid choice' if flag in ('schedule', 'device') else r'give ')
  _check_refused(good, tmp_path, capsys, {flag: value}, message, flag=flag)


def test_a_batch_larger_than_the_training_set_is_one_line(good, tmp_path, capsys):
  _check_refused(good, tmp_path, capsys, {'batch_size': '4'},
                 r'^error: 3 training images make no batch of 4; give a smaller --batch_size$')


# --- Backbone files. ---------------------------------------------------------------------------

def _save(path, arrays, metadata):
  with open(path, 'wb') as f:
    f.write(safetensors_numpy.save(arrays, metadata=metadata))
  return str(path)


def _with_metadata(tmp, good, **changes):
  """The good file's tensors with its metadata changed (None removes a key)."""
  metadata = {k: v for k, v in {**good['metadata'], **changes}.items() if v is not None}
  return _save(tmp / 'changed.safetensors', good['arrays'], metadata)


def _with_arrays(tmp, good, change):
  arrays = dict(good['arrays'])
  change(arrays)
  return _save(tmp / 'changed.safetensors', arrays, good['metadata'])


def _bytes(tmp, data):
  (tmp / 'file.safetensors').write_bytes(data)
  return str(tmp / 'file.safetensors')


def _good_bytes(good):
  with open(good['backbone'], 'rb') as f:
    return f.read()


def _nan_in_layer3(arrays):
  arrays['layer3.0.conv1.weight'] = arrays['layer3.0.conv1.weight'].copy()
  arrays['layer3.0.conv1.weight'][0, 0, 0, 0] = np.nan


NOT_SAFETENSORS = r'is not a readable safetensors file'
FITS_NOT = r"does not fit the detector's backbone: "
# (id, function of (tmp_path, good) -> the --backbone path, expected message)
BACKBONE_CASES = [
    ('missing', lambda t, g: str(t / 'nothing.safetensors'), r'no such file; give a file written by python -m sdd_jax\.export'),
    ('a_folder', lambda t, g: str(t), r'is a folder; give a file written by python -m sdd_jax\.export'),
    ('empty', lambda t, g: _bytes(t, b''), r'is empty \(0 bytes\)'),
    ('truncated', lambda t, g: _bytes(t, _good_bytes(g)[:-1000]),
     NOT_SAFETENSORS + r' \(Error while deserializing'),
    ('header_cut', lambda t, g: _bytes(t, _good_bytes(g)[:100]), NOT_SAFETENSORS),
    ('a_png', lambda t, g: _bytes(t, b'\x89PNG\r\n\x1a\n' + bytes(200)), NOT_SAFETENSORS),
    ('text', lambda t, g: _bytes(t, b'{"conv1.weight": [1, 2, 3]}\n'), NOT_SAFETENSORS),
    ('header_a_list', lambda t, g: _bytes(t, (2).to_bytes(8, 'little') + b'[]'),
     NOT_SAFETENSORS),
    ('no_metadata', lambda t, g: _save(t / 'plain.safetensors', g['arrays'], None),
     r"not a ResNet exported by python -m sdd_jax.export \(model 'unknown'\)"),
    ('densenet', lambda t, g: _with_metadata(t, g, model='densenet121',
                                             torchvision_model='densenet121'),
     r"not a ResNet .*\(model 'densenet121'\)"),
    ('not_torchvisions', lambda t, g: _with_metadata(t, g, torchvision_model='resnet7'),
     r'not a ResNet'),
    ('cifar_stem', lambda t, g: _with_metadata(t, g, model='resnet18_cifar', stem='cifar'),
     r'resnet18_cifar has a cifar stem'),
    ('no_stem', lambda t, g: _with_metadata(t, g, stem=None), r"the metadata has no 'stem'"),
    ('num_classes_0', lambda t, g: _with_metadata(t, g, num_classes='0'),
     r"metadata num_classes '0' is not a whole number >= 1"),
    ('num_classes_text', lambda t, g: _with_metadata(t, g, num_classes='ten'),
     r'metadata num_classes'),
    ('no_num_classes', lambda t, g: _with_metadata(t, g, num_classes=None),
     r'metadata num_classes None'),
    ('mean_two', lambda t, g: _with_metadata(t, g, mean='[0.5, 0.4]'),
     r'metadata mean .* is not a JSON list of 3 finite numbers'),
    ('mean_not_json', lambda t, g: _with_metadata(t, g, mean='0.5, 0.4, 0.3'), r'metadata mean'),
    ('no_mean', lambda t, g: _with_metadata(t, g, mean=None), r'metadata mean None'),
    ('std_nan', lambda t, g: _with_metadata(t, g, std='[NaN, 1, 1]'), r'metadata std'),
    ('std_zero', lambda t, g: _with_metadata(t, g, std='[0.2, 0, 0.3]'),
     r'metadata std \[0.2, 0, 0.3\] has a value <= 0'),
    ('no_std', lambda t, g: _with_metadata(t, g, std=None), r'metadata std None'),
    # The issue's case: a ResNet-18 of width 32 under resnet18's names.
    ('width_32', lambda t, g: synthetic._backbone_file(t / 'w32.safetensors', 'resnet18',
                                                       width=32),
     FITS_NOT + re.escape("conv1.weight is (32, 3, 7, 7) in the file, torchvision's resnet18 "
                          '(10 classes) needs (64, 3, 7, 7); the recipe builds')),
    ('labelled_resnet34', lambda t, g: _with_metadata(t, g, torchvision_model='resnet34',
                                                      model='resnet34'),
     FITS_NOT + re.escape("layer1.2.conv1.weight is missing (torchvision's resnet34 (10 "
                          'classes) needs it, (64, 64, 3, 3))')),
    ('other_class_count', lambda t, g: _with_metadata(t, g, num_classes='1000'),
     FITS_NOT + re.escape('fc.weight is (10, 512) in the file, torchvision\'s resnet18 (1000 '
                          'classes) needs (1000, 512)')),
    ('a_key_missing', lambda t, g: _with_arrays(t, g, lambda a: a.pop('layer4.1.bn2.running_var')),
     FITS_NOT + r'layer4\.1\.bn2\.running_var is missing'),
    ('an_extra_key', lambda t, g: _with_arrays(
        t, g, lambda a: a.update({'layer5.0.conv1.weight': np.zeros((2, 2), np.float32)})),
     FITS_NOT + r'layer5\.0\.conv1\.weight is not in torchvision\'s resnet18'),
    ('transposed_kernel', lambda t, g: _with_arrays(
        t, g, lambda a: a.update({'layer2.0.conv1.weight': np.ascontiguousarray(
            a['layer2.0.conv1.weight'].transpose(1, 0, 2, 3))})),
     FITS_NOT + re.escape('layer2.0.conv1.weight is (64, 128, 3, 3) in the file')),
    ('nan_weight', lambda t, g: _with_arrays(t, g, _nan_in_layer3),
     r'layer3\.0\.conv1\.weight holds NaN or infinity'),
]


@pytest.mark.parametrize('name,make,message', BACKBONE_CASES, ids=[c[0] for c in BACKBONE_CASES])
def test_every_bad_backbone_file_is_one_line_naming_it(good, tmp_path, capsys, name, make,
                                                       message):
  del name
  cases = tmp_path / 'case'
  cases.mkdir()
  path = make(cases, good)
  _check_refused(good, tmp_path, capsys, {'backbone': path},
                 r'^error: ' + re.escape(path) + r'[: ].*' + message)


# --- COCO annotation files and images: generated from annotations.FIELDS and the reader. ------

def _coco_copy(tmp, good):
  root = tmp / 'coco'
  shutil.copytree(good['coco_root'], root)
  return root


def _instances(root, split):
  return root / 'annotations' / f'instances_{split}.json'


def _edit(split, change):
  """A case: the split's instances JSON loaded, changed in place by `change`, written back."""
  def make(root):
    with open(_instances(root, split)) as f:
      dataset = json.load(f)
    change(dataset)
    with open(_instances(root, split), 'w') as f:
      json.dump(dataset, f)
    return _instances(root, split)
  return make


def _write(split, data):
  def make(root):
    _instances(root, split).write_bytes(data)
    return _instances(root, split)
  return make


def _image(split, change):
  """A case: the split's first image file changed by `change(path)`."""
  def make(root):
    path = sorted((root / split).iterdir())[0]
    change(path)
    return path
  return make


def _folder_for(path):
  os.remove(path)
  os.mkdir(path)


def _json_cases(split):
  """(id, make(root) -> the file the message names, message) for one split."""
  cases = [(f'{split}:{section}[0] without {key}',
            _edit(split, lambda d, s=section, k=key: d[s][0].pop(k)), rf"{section}\[0\] has no '{key}'")
           for section, keys in annotations.FIELDS.items() for key in keys]
  cases += [(f'{split}:no {section}', _edit(split, lambda d, s=section: d.pop(s)),
             rf"has no '{section}' list") for section in annotations.FIELDS]
  return cases + [
      (f'{split}:invalid JSON', _write(split, b'{"images": [{"id": 1,'),
       r'not valid JSON \(Expecting .* at line 1 column \d+\)'),
      (f'{split}:not UTF-8', _write(split, b'{"images": "\xe9t\xe9"}'), r'not UTF-8 text'),
      (f'{split}:a JSON list', _write(split, b'[]'), r'holds a JSON list, not an object'),
      (f'{split}:images not a list', _edit(split, lambda d: d.update(images={})),
       r"'images' is not a list"),
      (f'{split}:an image not an object', _edit(split, lambda d: d['images'].append(3)),
       r'images\[\d+\] is a int, not an object'),
      (f'{split}:a string id', _edit(split, lambda d: d['images'][0].update(id='1')),
       r"images\[0\] has id '1'"),
      (f'{split}:category id 0', _edit(split, lambda d: d['categories'][0].update(id=0)),
       r'categories\[0\] has id 0; ids are whole numbers >= 1'),
      (f'{split}:bbox of 3', _edit(split, lambda d: d['annotations'][0].update(bbox=[1, 2, 3])),
       r'annotations\[0\] has bbox \[1, 2, 3\]'),
      (f'{split}:bbox negative', _edit(split, lambda d: d['annotations'][0]['bbox'].__setitem__(
          2, -4)), r'annotations\[0\] has bbox \[.*-4'),
      (f'{split}:bbox NaN', _edit(split, lambda d: d['annotations'][0]['bbox'].__setitem__(
          0, float('nan'))), r'annotations\[0\] has bbox \[nan'),
      (f'{split}:area text', _edit(split, lambda d: d['annotations'][0].update(area='big')),
       r"annotations\[0\] has area 'big'"),
      (f'{split}:repeated image id', _edit(split, lambda d: d['images'].append(
          dict(d['images'][0]))), r"'images' repeats an id"),
      (f'{split}:unknown image', _edit(split, lambda d: d['annotations'][0].update(image_id=999)),
       r"annotations\[0\] has image_id 999, which 'images' does not list"),
      (f'{split}:unknown category', _edit(split, lambda d: d['annotations'][0].update(
          category_id=2)), r"has category_id 2, which 'categories' does not list"),
      (f'{split}:categories empty', _edit(split, lambda d: (d.update(categories=[]), d.update(
          annotations=[]))), r"'categories' is empty"),
      (f'{split}:a folder', lambda root, s=split: (os.remove(_instances(root, s)), os.mkdir(
          _instances(root, s)), _instances(root, s))[-1], r'cannot be read \(IsADirectoryError'),
      (f'{split}:an image missing', _image(split, os.remove), r'is missing \(listed in .*'
       + split + r'\.json\)'),
      (f'{split}:an image of text', _image(split, lambda p: p.write_bytes(b'not a png')),
       r'cannot be read as an image \(UnidentifiedImageError'),
      (f'{split}:an image a folder', _image(split, _folder_for),
       r'cannot be read as an image \(IsADirectoryError'),
      (f'{split}:the image folder a file', lambda root, s=split: (
          shutil.rmtree(root / s), (root / s).write_text(''), root / s)[-1],
       r'is not a folder; unzip ' + split + r'\.zip'),
  ]


# val2017 goes through the same reader: every generated key case, and one case of each layer.
VAL_LAYERS = ('invalid JSON', 'a JSON list', 'a folder', 'an image missing', 'an image of text')
COCO_CASES = _json_cases('train2017') + [
    case for case in _json_cases('val2017')
    if ' without ' in case[0] or case[0].split(':')[1] in VAL_LAYERS] + [
    ('train2017:no box over 1 pixel', _edit('train2017', lambda d: [
        a['bbox'].__setitem__(2, 1) for a in d['annotations']]),
     r'has no image with a box wider and taller than 1 pixel'),
    ('val2017:no image', _edit('val2017', lambda d: d.update(images=[], annotations=[])),
     r'lists no image to evaluate on'),
]


@pytest.mark.parametrize('name,make,message', COCO_CASES, ids=[c[0] for c in COCO_CASES])
def test_every_bad_coco_file_or_image_is_one_line_naming_it(good, tmp_path, capsys, name, make,
                                                            message):
  del name
  root = _coco_copy(tmp_path, good)
  named = make(root)
  _check_refused(good, tmp_path, capsys, {'coco_root': str(root)},
                 r'^error: ' + re.escape(str(named)) + r'[: ].*' + message)


# --- Workdirs. ---------------------------------------------------------------------------------

def _file(path, text='x'):
  path.write_text(text)
  return path


def _holding(name, text):
  """A case: a workdir holding `name` with `text` (a file this recipe did not write whole)."""
  def make(tmp):
    (tmp / 'run').mkdir()
    _file(tmp / 'run' / name, text)
    return tmp / 'run'
  return make


# (id, function of tmp_path -> the --workdir path, expected message after 'error: ')
WORKDIR_CASES = [
    ('a_file', lambda t: _file(t / 'run'), r'--workdir (/.*)/run: \1/run is a file, not a folder'),
    ('under_a_file', lambda t: _file(t / 'run') / 'inner',
     r'--workdir (/.*)/run/inner: \1/run is a file, not a folder; give another --workdir$'),
    ('detection_json_not_json', _holding('detection.json', '{"schedule": '),
     r'/.*/run/detection\.json cannot be read \(JSONDecodeError: Expecting value: line 1 '),
    ('detection_json_a_list', _holding('detection.json', '[]'),
     r'/.*/run/detection\.json cannot be read \(not the object this recipe writes\); the '
     r'workdir holds something else: give another --workdir$'),
    ('results_json_not_json', _holding('results.json', 'nan'),
     r'/.*/run/results\.json cannot be read \(JSONDecodeError'),
    ('results_json_no_iterations', _holding('results.json', '{"mAP": 1}'),
     r'/.*/run/results\.json cannot be read \(not the object this recipe writes\)'),
]
if not torch.cuda.is_available():
  WORKDIR_CASES.append(('cuda_without_a_gpu', None, r'--device cuda: torch sees no CUDA GPU'))


@pytest.mark.parametrize('name,make,message', WORKDIR_CASES, ids=[c[0] for c in WORKDIR_CASES])
def test_every_bad_workdir_is_one_line_and_unchanged(good, tmp_path, capsys, name, make, message):
  if make is None:  # not a workdir case: the device
    _check_refused(good, tmp_path, capsys, {'device': 'cuda'}, '^error: ' + message)
    return
  workdir = make(tmp_path)
  parent = tmp_path if workdir.parent.exists() else workdir.parent
  before = workdirs.snapshot(parent, folders=True)
  _assert_one_line(*_run(_argv(good, workdir=str(workdir)), capsys), '^error: ' + message)
  assert workdirs.snapshot(parent, folders=True) == before, name


def test_the_generated_flag_cases_cover_every_flag_that_takes_a_value():
  parser = flags.make_parser('', 'cpu')
  taking_values = {a.dest for a in parser._actions  # pylint: disable=protected-access
                   if a.option_strings and a.nargs != 0}
  assert {case.values[0] for case in _flag_cases()} == taking_values
  assert {'batch_size', 'workers', 'lr', 'max_iters', 'box_score_thresh'} <= taking_values


# --- An image damaged past its header: found when training reads it. -------------------------

@pytest.mark.parametrize('workers', ['0', '1'])
def test_an_image_damaged_past_its_header_is_one_line_when_training_reads_it(
    good, tmp_path, capsys, workers):
  root = _coco_copy(tmp_path, good)
  for path in (root / 'train2017').iterdir():  # a PNG cut in its pixel data: the header reads
    path.write_bytes(path.read_bytes()[:2000])
  workdir = tmp_path / 'run'
  code, out, err = _run(_argv(good, coco_root=str(root), workdir=str(workdir), workers=workers),
                        capsys)
  assert code == 1 and 'Traceback' not in out + err and err.count('\n') == 1, err
  assert re.fullmatch(r'error: ' + re.escape(str(root / 'train2017')) + r'/0+[1-7]\.png cannot '
                      r'be read as an image \(OSError: .*truncated.*\); replace it with the '
                      r'original file and run the same command \(it resumes from the last '
                      r'checkpoint\)\n', err), err
  assert sorted(os.listdir(workdir)) == ['detection.json']  # no batch was trained


# --- What users have: a bfloat16 or float16 backbone file loads. -----------------------------


@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
def test_a_half_precision_backbone_loads_as_torch_casts_it(good, tmp_path, dtype):
  """A backbone saved by torch in bf16/f16 (common for torch checkpoints) passes the checks and
  loads into the detector's ResNet; each float tensor equals torch's own `.float()` of the
  half-precision tensor (the independent cast), integer counters stay as they are."""
  import torch  # pylint: disable=import-outside-toplevel
  from safetensors import torch as safetensors_torch  # pylint: disable=import-outside-toplevel
  from sdd_jax.detection import detector  # pylint: disable=import-outside-toplevel
  half = {k: (torch.from_numpy(np.array(v)).to(getattr(torch, dtype)) if v.dtype.kind == 'f'
              else torch.from_numpy(np.array(v))) for k, v in good['arrays'].items()}
  path = str(tmp_path / 'half.safetensors')
  safetensors_torch.save_file(half, path, metadata=good['metadata'])
  arrays, metadata = detector.read_backbone(path)
  resnet = detector.create_resnet(arrays, metadata)
  state = resnet.state_dict()
  checked = 0
  for key, tensor in half.items():
    if key not in state:
      continue
    expected = tensor.float() if tensor.is_floating_point() else tensor
    assert state[key].dtype == expected.dtype, key
    assert torch.equal(state[key], expected), key
    checked += 1
  assert checked > 100  # every conv, BN and fc tensor of a ResNet-18
