"""The bad-input catalogue for export and import: `python -m sdd_jax.export`, `init_from`
(`train.py`'s `config.model.init_from`), `models.load_torchvision` and `evaluate.py
--init_from / --experiment`.

Each case: one `error:` line (or one UserError line) that says what to change, exit status 1
(argparse's 2 for flag parsing), no traceback, an existing workdir byte-identical and no new
one created. The damaged safetensors files are generated from one good export: truncated at
every structural offset, header bytes flipped, header fields rewritten, tensors dropped,
added, reshaped, re-typed; the paths are missing, a folder, under a file.
"""
import importlib.util
import json
import os
import re
import shutil
import sys

import jax
import numpy as np
import pytest
from absl import flags
from safetensors import numpy as safetensors_numpy

from sdd_jax import errors
from sdd_jax import export
from sdd_jax import models
from sdd_jax.classification import trainer
from tests import workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = os.path.join(ROOT, 'configs', 'cifar100_resnet18_ce.py') + ':smoke'  # same network


def _config():
  config = workdirs.tiny_config()
  config.num_epochs = 1
  return config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """(a trained tiny workdir, a folder holding only its config.json, its export's bytes)."""
  root = tmp_path_factory.mktemp('export_catalogue')
  workdir = str(root / 'run')
  trainer.train_and_evaluate(_config(), workdir)
  config_only = root / 'config_only'
  config_only.mkdir()
  shutil.copy(os.path.join(workdir, 'config.json'), config_only / 'config.json')
  export.export(workdir, str(root / 'good.safetensors'))
  return workdir, str(config_only), (root / 'good.safetensors').read_bytes()


def _snapshot(root):
  return workdirs.snapshot(root, folders=True) if os.path.exists(root) else None


def _one_error_line(err: str, message: str) -> str:
  lines = [line for line in err.splitlines() if line.strip()]
  assert 'Traceback' not in err, err
  assert len(lines) == 1 and lines[0].startswith('error: '), err
  assert re.search(message, lines[0]), (message, lines[0])
  return lines[0]


# ---------------------------------------------------------------------------------------------
# The safetensors damage generator.


def _layout(data: bytes):
  """(header length n, header dict) of a safetensors file."""
  n = int.from_bytes(data[:8], 'little')
  return n, json.loads(data[8:8 + n])


def _raw(header: dict, body: bytes) -> bytes:
  """A safetensors file from a header dict and the data bytes, written by hand (so any dtype
  string, offset or shape can be put in it)."""
  text = json.dumps(header, separators=(',', ':')).encode()
  text += b' ' * (-len(text) % 8)
  return len(text).to_bytes(8, 'little') + text + body


def _arrays(good: bytes):
  return {k: np.array(v) for k, v in safetensors_numpy.load(good).items()}


def _saved(arrays) -> bytes:
  return safetensors_numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()})


def _changed(good: bytes, **changes) -> bytes:
  """The good file's tensors with `changes` ({key: array, or None to drop}); keys use '__'
  for '.'."""
  arrays = _arrays(good)
  for key, value in changes.items():
    key = key.replace('__', '.')
    if value is None:
      arrays.pop(key)
    else:
      arrays[key] = value(arrays.get(key)) if callable(value) else value
  return _saved(arrays)


def _retyped(good: bytes, key: str, dtype: str, itemsize: int) -> bytes:
  """The good file with `key` stored as safetensors dtype `dtype` (zero bytes of the right
  size), e.g. F8_E4M3, which NumPy has no type for."""
  arrays = _arrays(good)
  shape = arrays.pop(key).shape
  n, header = _layout(_saved(arrays))
  body = _saved(arrays)[8 + n:]
  header[key] = {'dtype': dtype, 'shape': list(shape),
                 'data_offsets': [len(body), len(body) + int(np.prod(shape)) * itemsize]}
  return _raw(header, body + b'\0' * (int(np.prod(shape)) * itemsize))


def _header_edit(good: bytes, edit) -> bytes:
  n, header = _layout(good)
  edit(header)
  return _raw(header, good[8 + n:])


def _flip(data: bytes, at: int, value: int) -> bytes:
  return data[:at] + bytes([value]) + data[at + 1:]


def _first_key(header):
  return sorted(k for k in header if k != '__metadata__')[0]


def _set_dtype(header, dtype):
  header[_first_key(header)]['dtype'] = dtype


def _shift_offsets(header):
  start, end = header[_first_key(header)]['data_offsets']
  header[_first_key(header)]['data_offsets'] = [start + 4, end + 4]


UNREADABLE = r'is not a readable safetensors file \(.+\); give a file written by python -m ' \
             r'sdd_jax.export or safetensors.torch.save_file'


def damaged_files(good: bytes):
  """[(id, bytes, or 'missing' / 'folder' / 'under_file', expected message)]."""
  n, header = _layout(good)
  body = len(good) - 8 - n
  out = [('missing', 'missing', r': no such file; give a file written by python -m '),
         ('folder', 'folder', r' is a folder; give a file written by'),
         ('under_file', 'under_file', r': (no such file|Not a directory); give a file'),
         ('empty', b'', r' is empty \(0 bytes\); give a file written by'),
         ('text', b'these are not the weights you are looking for\n' * 4, UNREADABLE),
         ('zip', b'PK\x03\x04' + b'\0' * 60, UNREADABLE),  # e.g. a torch.save .pt file
         ('npz', b'\x93NUMPY' + b'\0' * 60, UNREADABLE)]
  # Truncated at every structural boundary and inside each part.
  for at in sorted({1, 7, 8, 9, 8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1, 8 + n + body // 2,
                    len(good) - 1}):
    out.append((f'truncated@{at}', good[:at], UNREADABLE))
  out += [
      ('length_huge', b'\xff' * 8 + good[8:], UNREADABLE),
      ('length_short', (n - 8).to_bytes(8, 'little') + good[8:], UNREADABLE),
      ('length_long', (n + 8).to_bytes(8, 'little') + good[8:], UNREADABLE),
      ('header_brace', _flip(good, 8, ord('[')), UNREADABLE),
      ('header_utf8', _flip(good, 9, 0xff), UNREADABLE),
      ('header_end', _flip(good, 8 + n - 1, ord('{')), UNREADABLE),
      ('header_not_object', _raw([1, 2], b''), UNREADABLE),  # type: ignore[arg-type]
      ('dtype_size', _header_edit(good, lambda h: _set_dtype(h, 'F64')), UNREADABLE),
      ('dtype_unknown', _header_edit(good, lambda h: _set_dtype(h, 'F33')), UNREADABLE),
      ('offsets', _header_edit(good, _shift_offsets), UNREADABLE),
      ('trailing_bytes', good + b'\0' * 16, UNREADABLE),
      # Readable files whose tensors do not fit the config's network.
      ('dtype_int32', _changed(good, conv1__weight=lambda a: a.astype(np.int32)),
       r'conv1.weight: int32 in the file, weights must be float32, float16 or bfloat16'),
      ('dtype_uint8', _changed(good, fc__bias=lambda a: a.astype(np.uint8)),
       r'fc.bias: uint8 in the file, weights must be float'),
      ('dtype_bool', _changed(good, bn1__weight=lambda a: a > 0),
       r'bn1.weight: bool in the file, weights must be float'),
      ('dtype_float8', _retyped(good, 'conv1.weight', 'F8_E4M3', 1),
       r'conv1.weight is F8_E4M3; save the weights as float32, float16 or bfloat16'),
      ('shape_wider', _changed(good, layer1__0__conv1__weight=lambda a: np.concatenate([a, a])),
       r'layer1.0.conv1.weight: \(8, 4, 3, 3\) in the file, this model needs \(4, 4, 3, 3\)'),
      ('shape_kernel', _changed(good, layer1__0__conv1__weight=lambda a: a[:, :, :1, :1]),
       r'layer1.0.conv1.weight: \(4, 4, 1, 1\) in the file, this model needs \(4, 4, 3, 3\)'),
      ('shape_flat', _changed(good, bn1__running_var=lambda a: a[:-1]),
       r'bn1.running_var: \(\d+,\) in the file, this model needs \(\d+,\)'),
      ('key_missing', _changed(good, layer1__0__conv1__weight=None),
       r'layer1.0.conv1.weight: missing'),
      ('keys_missing', _changed(good, **{k.replace('.', '__'): None
                                         for k in _arrays(good) if k.startswith('layer4.')}),
       r'layer4.0.conv1.weight: missing; .* \.\.\.'),
      ('key_extra', _changed(good, head2__weight=np.zeros((3, 3), np.float32)),
       r'not in this model: head2.weight'),
      ('channels_1', _changed(good, conv1__weight=lambda a: a[:, :1]),
       r"conv1.weight: the file's network takes 1 input channel\(s\), this model 3 \(the "
       r"data's channels, len\(config.data.mean\)\)"),
      ('channels_4', _changed(good, conv1__weight=lambda a: np.concatenate([a, a[:, :1]], 1)),
       r"the file's network takes 4 input channel\(s\), this model 3"),
  ]
  return out


def _place(tmp_path, content) -> str:
  path = tmp_path / 'weights.safetensors'
  if content == 'folder':
    path.mkdir()
  elif content == 'under_file':
    (tmp_path / 'a_file').write_bytes(b'x')
    return str(tmp_path / 'a_file' / 'weights.safetensors')
  elif content != 'missing':
    path.write_bytes(content)
  return str(path)


def _good_file() -> bytes:
  """What `python -m sdd_jax.export` writes for `_config()`'s network (zeros: the damage
  cases need its layout, not trained values)."""
  from sdd_jax.models import build, torchvision_io  # pylint: disable=import-outside-toplevel
  shapes = jax.eval_shape(lambda: build.create_model(_config()).init(
      jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32), train=False))
  zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  return _saved(torchvision_io.to_torchvision('resnet18_cifar', zeros, step=4))


FILES = damaged_files(_good_file())
FILE_IDS = [c[0] for c in FILES]


def test_the_damage_generator_covers_every_part_of_the_file():
  """Not vacuous: every path kind, every header part, truncation before, in and after the
  header, and each kind of tensor mismatch."""
  ids = set(FILE_IDS)
  assert {'missing', 'folder', 'under_file', 'empty', 'text'} <= ids
  assert len([i for i in ids if i.startswith('truncated@')]) >= 9
  assert {'length_huge', 'header_utf8', 'offsets', 'dtype_float8', 'dtype_int32',
          'shape_wider', 'key_missing', 'key_extra', 'channels_1'} <= ids
  readable = {i for i, content, _ in FILES if isinstance(content, bytes) and content}
  for name in ('dtype_int32', 'shape_wider', 'key_missing', 'channels_1'):
    assert name in readable
    safetensors_numpy.load(dict((i, c) for i, c, _ in FILES)[name])  # really a good file


# --- surface 1: models.load_torchvision ------------------------------------------------------


@pytest.mark.parametrize('name,content,message', FILES, ids=FILE_IDS)
def test_load_torchvision_refuses_in_one_line_naming_the_file(tmp_path, name, content, message):
  del name
  path = _place(tmp_path, content)
  with pytest.raises(errors.UserError, match=message) as info:
    models.load_torchvision('resnet18_cifar', path, num_classes=10, channels=3,
                            **workdirs.tiny_config().model.kwargs)
  assert '\n' not in str(info.value) and path in str(info.value)


# --- surface 2: train.py with config.model.init_from ------------------------------------------


@pytest.mark.parametrize('name,content,message', FILES, ids=FILE_IDS)
def test_init_from_refuses_before_the_workdir_exists(tmp_path, name, content, message):
  del name
  config = _config()
  config.model.init_from = _place(tmp_path, content)
  workdir = tmp_path / 'new_run'
  with pytest.raises(errors.UserError, match=message) as info:
    trainer.train_and_evaluate(config, str(workdir))
  assert '\n' not in str(info.value)
  assert f'config.model.init_from={config.model.init_from}' in str(info.value)
  assert not workdir.exists()


# --- surfaces 3 and 4: evaluate.py --init_from, and with --experiment --------------------------


def _evaluate_cli():
  """evaluate.py loaded once as a module (its absl flags are defined once per process)."""
  if 'evaluate_cli' not in sys.modules:
    spec = importlib.util.spec_from_file_location('evaluate_cli', os.path.join(ROOT, 'evaluate.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules['evaluate_cli'] = module
  return sys.modules['evaluate_cli']


def evaluate_main(argv, capsys):
  """(exit status, stderr) of `python evaluate.py *argv`, in-process."""
  cli = _evaluate_cli()
  precision = jax.config.jax_default_matmul_precision
  capsys.readouterr()
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['evaluate.py', *argv])
    status = cli.main([])
  finally:
    flags.FLAGS.unparse_flags()
    jax.config.update('jax_default_matmul_precision', precision)
  return status, capsys.readouterr().err


@pytest.mark.parametrize('name,content,message', FILES, ids=FILE_IDS)
def test_evaluate_init_from_refuses_and_leaves_the_workdir_byte_identical(run, tmp_path, capsys,
                                                                          name, content, message):
  del name
  _, config_only, _ = run
  path = _place(tmp_path, content)
  before = _snapshot(config_only)
  status, err = evaluate_main([f'--workdir={config_only}', f'--init_from={path}'], capsys)
  assert status == 1
  assert f'--init_from {path}' in _one_error_line(err, message)
  assert _snapshot(config_only) == before


@pytest.mark.parametrize('name,content,message', FILES, ids=FILE_IDS)
def test_evaluate_experiment_with_a_bad_file_creates_no_workdir(tmp_path, capsys, name, content,
                                                                message):
  del name
  path = _place(tmp_path, content)
  workdir = tmp_path / 'fresh'
  status, err = evaluate_main([f'--workdir={workdir}', f'--init_from={path}',
                               f'--experiment={EXPERIMENT}'], capsys)
  assert status == 1
  _one_error_line(err, message)
  assert not workdir.exists()


# --- surface 5: python -m sdd_jax.export --------------------------------------------------------


def _file(tmp):
  (tmp / 'a_file').write_bytes(b'keep me')
  return tmp / 'a_file'


def _folder(tmp):
  (tmp / 'a_folder').mkdir(exist_ok=True)
  return tmp / 'a_folder'


def _config_only_copy(run, tmp):
  shutil.copytree(run[1], tmp / 'no_checkpoint')
  return tmp / 'no_checkpoint'


# (id, argv given (run, tmp, workdir) -> flags, exit status, message of the one line)
EXPORTS = [
    ('out_is_folder', lambda run, tmp, w: ['--workdir', w, '--out', str(_folder(tmp))], 1,
     r'--out .*a_folder is a folder; give a file path in it, such as .*a_folder/net.safetensors'),
    ('out_ends_in_separator', lambda run, tmp, w: ['--workdir', w, '--out', str(tmp / 'new') + '/'],
     1, r'--out .*new/ is a folder; give a file path'),
    ('out_under_file', lambda run, tmp, w: ['--workdir', w, '--out',
                                            str(_file(tmp) / 'net.safetensors')], 1,
     r'--out .*a_file/net.safetensors: .*a_file is a file, not a folder; give a path in a folder'),
    ('out_deep_under_file', lambda run, tmp, w: ['--workdir', w, '--out',
                                                 str(_file(tmp) / 'a' / 'b' / 'net.safetensors')],
     1, r'a_file is a file, not a folder'),
    ('out_empty', lambda run, tmp, w: ['--workdir', w, '--out', ''], 1,
     r'^error: --out is empty; give a file path'),
    ('workdir_missing', lambda run, tmp, w: ['--workdir', str(tmp / 'nowhere'), '--out',
                                             str(tmp / 'x.safetensors')], 1,
     r'--workdir .*nowhere is not a folder; give the --workdir of a train.py run'),
    ('workdir_is_file', lambda run, tmp, w: ['--workdir', str(_file(tmp)), '--out',
                                             str(tmp / 'x.safetensors')], 1,
     r'--workdir .*a_file is not a folder'),
    ('workdir_without_config', lambda run, tmp, w: ['--workdir', str(_folder(tmp)), '--out',
                                                    str(tmp / 'x.safetensors')], 1,
     r'a_folder/config.json not found; --workdir must be a folder written by train.py'),
    ('workdir_without_checkpoint', lambda run, tmp, w: [
        '--workdir', str(_config_only_copy(run, tmp)), '--out', str(tmp / 'x.safetensors')], 1,
     r'no checkpoint in .*no_checkpoint; train first'),
    ('step_missing', lambda run, tmp, w: ['--workdir', w, '--out', str(tmp / 'x.safetensors'),
                                          '--step', '3'], 1,
     r'checkpoint 3 in .*checkpoints is unreadable'),
    ('member_2', lambda run, tmp, w: ['--workdir', w, '--out', str(tmp / 'x.safetensors'),
                                      '--member', '2'], 1,
     r'--member 2: only a DML run has a network 1 .*; use --member 0'),
    ('member_1_without_dml', lambda run, tmp, w: ['--workdir', w, '--out',
                                                  str(tmp / 'x.safetensors'), '--member', '1'], 1,
     r'--member 1: only a DML run has a network 1 \(this run: methods none\)'),
    ('step_not_a_number', lambda run, tmp, w: ['--workdir', w, '--out', str(tmp / 'x'),
                                               '--step', 'last'], 2,
     r"argument --step: invalid int value: 'last'"),
    ('out_flag_missing', lambda run, tmp, w: ['--workdir', w], 2,
     r'the following arguments are required: --out'),
]


@pytest.mark.parametrize('name,argv,status,message', EXPORTS, ids=[c[0] for c in EXPORTS])
def test_export_refuses_in_one_line_and_writes_nothing(run, tmp_path, capsys, name, argv, status,
                                                       message):
  del name
  workdir = run[0]
  args = argv(run, tmp_path, workdir)
  before, around = _snapshot(workdir), _snapshot(tmp_path)
  capsys.readouterr()
  if status == 2:  # argparse: usage, then one `prog: error:` line
    with pytest.raises(SystemExit) as info:
      export.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and err.strip().splitlines()[-1].startswith(
        'python -m sdd_jax.export: error: ')
    assert re.search(message, err)
  else:
    assert export.main(args) == 1
    _one_error_line(capsys.readouterr().err, message)
  assert _snapshot(workdir) == before
  assert _snapshot(tmp_path) == around  # no .tmp, no folder made, the file kept


def test_export_succeeds_where_out_needs_new_folders(run, tmp_path):
  """The refusals are not over-eager: missing parent folders are made."""
  out = tmp_path / 'a' / 'b' / 'net.safetensors'
  assert export.main(['--workdir', run[0], '--out', str(out)]) == 0
  assert sorted(os.listdir(out.parent)) == ['net.safetensors']
  assert out.read_bytes()[8:9] == b'{'


# --- surface 6: evaluate.py --workdir / --experiment without weights --------------------------


def _empty(tmp):
  (tmp / 'empty').mkdir()
  return tmp / 'empty'


# (id, argv given (run, tmp) -> flags, the workdir it must leave as it was, message)
EVALUATES = [
    ('experiment_absent_folder', lambda run, tmp: [f'--workdir={tmp / "absent"}',
                                                   f'--experiment={EXPERIMENT}'],
     lambda run, tmp: tmp / 'absent',
     r'no checkpoint in .*absent/checkpoints; train first \(train.py --config .* --workdir '
     r'.*absent\) or give --init_from'),
    ('experiment_empty_folder', lambda run, tmp: [f'--workdir={_empty(tmp)}',
                                                  f'--experiment={EXPERIMENT}'],
     lambda run, tmp: tmp / 'empty', r'no checkpoint in .*empty/checkpoints; train first'),
    ('experiment_file_missing', lambda run, tmp: [f'--workdir={tmp / "absent"}',
                                                  '--experiment=configs/nope.py'],
     lambda run, tmp: tmp / 'absent', r'nope.py'),
    ('experiment_argument', lambda run, tmp: [f'--workdir={tmp / "absent"}',
                                              f'--experiment={EXPERIMENT},smoek'],
     lambda run, tmp: tmp / 'absent', r"unknown config argument\(s\) \['smoek'\]"),
    ('experiment_other_run', lambda run, tmp: [
        f'--workdir={run[0]}', f"--experiment={EXPERIMENT}"],
     lambda run, tmp: run[0], r'holds a run of a different config \(data\.crop_padding: 2 -> 4'),
    ('experiment_workdir_is_file', lambda run, tmp: [f'--workdir={_file(tmp)}',
                                                     f'--experiment={EXPERIMENT}'],
     lambda run, tmp: tmp / 'a_file', r'--workdir .*a_file is a file; give a directory path'),
    ('experiment_unknown_evals', lambda run, tmp: [
        f'--workdir={tmp / "absent"}', f'--experiment={EXPERIMENT}', '--evals=acuracy',
        f'--init_from={_place(tmp, run[2])}'],
     lambda run, tmp: tmp / 'absent', r"--evals: unknown evaluator 'acuracy'; known: accuracy"),
    ('workdir_absent', lambda run, tmp: [f'--workdir={tmp / "absent"}'],
     lambda run, tmp: tmp / 'absent', r'--workdir .*absent is not a folder'),
    ('workdir_empty', lambda run, tmp: [f'--workdir={_empty(tmp)}'],
     lambda run, tmp: tmp / 'empty', r'empty/config.json not found'),
    ('workdir_without_checkpoint', lambda run, tmp: [f'--workdir={run[1]}'],
     lambda run, tmp: run[1], r'no checkpoint in .*config_only/checkpoints; train first'),
    ('workdir_unknown_evals', lambda run, tmp: [f'--workdir={run[0]}', '--evals=ece'],
     lambda run, tmp: run[0], r"--evals: unknown evaluator 'ece'"),
]


@pytest.mark.parametrize('name,argv,kept,message', EVALUATES, ids=[c[0] for c in EVALUATES])
def test_evaluate_refuses_before_writing(run, tmp_path, capsys, name, argv, kept, message):
  del name
  args = argv(run, tmp_path)
  workdir = str(kept(run, tmp_path))
  before = _snapshot(workdir)
  status, err = evaluate_main(args, capsys)
  assert status == 1
  _one_error_line(err, message)
  assert _snapshot(workdir) == before  # None: still absent


# --- what users have: float16, bfloat16, float64 weights and any integer count are read --------


def _bf16_file(arrays) -> bytes:
  """`arrays` with every float tensor stored as BF16 (written by hand: NumPy has no bfloat16)."""
  import ml_dtypes  # pylint: disable=import-outside-toplevel
  header, body = {}, b''
  for key in sorted(arrays):
    value = arrays[key]
    dtype, data = ('BF16', value.astype(ml_dtypes.bfloat16).tobytes()) if value.dtype.kind == 'f' \
        else ('I64', value.astype(np.int64).tobytes())
    header[key] = {'dtype': dtype, 'shape': list(value.shape),
                   'data_offsets': [len(body), len(body) + len(data)]}
    body += data
  return _raw(header, body)


def _bf16_to_float32(value: np.ndarray) -> np.ndarray:
  """bfloat16 is float32's upper 16 bits; rounding to nearest even, then widening by hand."""
  bits = np.ascontiguousarray(value, np.float32).view(np.uint32).astype(np.uint64)
  rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
  return rounded.astype(np.uint32).view(np.float32)


def _random_arrays():
  rng = np.random.default_rng(0)
  return {k: (rng.normal(size=v.shape).astype(np.float32) if v.dtype.kind == 'f' else v)
          for k, v in _arrays(_good_file()).items()}


ACCEPTED = [
    ('float16', lambda a: _saved({k: v.astype(np.float16) if v.dtype.kind == 'f' else v
                                  for k, v in a.items()}),
     lambda v: v.astype(np.float16).astype(np.float32)),
    ('bfloat16', _bf16_file, _bf16_to_float32),
    ('float64', lambda a: _saved({k: v.astype(np.float64) if v.dtype.kind == 'f' else v
                                  for k, v in a.items()}), lambda v: v),
    ('int32_counts', lambda a: _saved({k: v if v.dtype.kind == 'f' else v.astype(np.int32)
                                       for k, v in a.items()}), lambda v: v),
]


@pytest.mark.parametrize('name,write,expected', ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_float16_bfloat16_float64_and_int_counts_are_read_as_float32(tmp_path, name, write,
                                                                     expected):
  del name
  arrays = _random_arrays()
  path = _place(tmp_path, write(arrays))
  loaded = models.load_torchvision('resnet18_cifar', path, **workdirs.tiny_config().model.kwargs)
  # Placed by hand: OIHW -> HWIO, [out, in] -> [in, out].
  np.testing.assert_array_equal(loaded['params']['stem_conv']['kernel'],
                                np.transpose(expected(arrays['conv1.weight']), (2, 3, 1, 0)))
  np.testing.assert_array_equal(loaded['params']['classifier']['output']['kernel'],
                                expected(arrays['fc.weight']).T)
  np.testing.assert_array_equal(loaded['batch_stats']['layers_1']['block0']['downsample_bn']['var'],
                                expected(arrays['layer2.0.downsample.1.running_var']))
  assert {leaf.dtype for leaf in jax.tree.leaves(loaded)} == {np.dtype(np.float32)}
