"""The compile check against arithmetic from the trees: smoke configs compiled for a v5e:2x2
slice (4 chips) by libtpu on this CPU host (JAX_PLATFORMS=cpu, conftest.py).

Arguments: one chip holds the replicated state whole, PS-KD's row-sharded table and the batch
as a quarter each; XLA's argument bytes add the TPU tile padding, recomputed here from the
compiled input layouts' tiles. About 30 s in all (three compiles of tiny programs).
"""
import json
import math
import os

import jax
import numpy as np
import pytest

from sdd_jax.aot import __main__ as aot_main
from sdd_jax.aot import compile as compile_lib
from sdd_jax.config import cli as config_cli
from sdd_jax import parallel
from sdd_jax import tasks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICES = 4


def _config(name, *overrides):
  return config_cli.load(['x', '--config', os.path.join(ROOT, 'configs', name)] + list(overrides))


@pytest.fixture(scope='module')
def mesh():
  return compile_lib.topology_mesh('v5e:2x2')


def _nbytes(tree, divide=1):
  return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree)) // divide


def _tiled_bytes(arg, fmt) -> int:
  """One chip's bytes of `arg` in the compiled layout: the shard's minor dimensions (in the
  layout's major-to-minor order) rounded up to the first tile."""
  shape = fmt.sharding.shard_shape(arg.shape)
  order, tile = list(fmt.layout.major_to_minor), tuple(fmt.layout.tiling[0])
  dims = {d: shape[d] for d in order}
  for d, t in zip(order[len(order) - len(tile):], tile[max(0, len(tile) - len(order)):]):
    dims[d] = -(-dims[d] // t) * t
  elements = math.prod(dims.values()) if order else math.prod(tile)  # a scalar fills a tile
  return elements * arg.dtype.itemsize


@pytest.fixture(scope='module')
def compiled(mesh):
  """(config, targets, program, executable) of the PS-KD smoke train step."""
  config = _config('cifar100_resnet18_ps_kd.py:smoke')
  targets = tasks.task_of(config).create_compile_targets(config, mesh)
  program, executable = compile_lib.compile_program(*targets['train'])
  return config, targets, program, executable


def test_argument_bytes_are_the_state_and_the_batch_counted_from_the_trees(compiled):
  config, targets, program, executable = compiled
  state, batch = targets['train'][1]
  table = state.method_states['ps_kd']['table']
  rows = parallel.padded_rows(64, DEVICES)  # smoke: data.num_examples = 64
  assert table.shape == (rows, config.data.num_classes)
  replicated = _nbytes(state.replace(method_states={}))
  expected = replicated + _nbytes(table, DEVICES) + _nbytes(batch, DEVICES)
  assert program['unpadded_arguments'] == expected
  flat_args = jax.tree.leaves(targets['train'][1])
  formats = jax.tree.leaves(executable.input_formats)
  assert len(flat_args) == len(formats)
  assert program['memory']['arguments'] == sum(map(_tiled_bytes, flat_args, formats))
  # the per-chip batch the config implies: batch_size / chips rows of 32x32x3 uint8 images
  images = formats[flat_args.index(batch['images'])]
  assert images.sharding.shard_shape(batch['images'].shape) == (
      config.batch_size // DEVICES, 32, 32, 3)
  assert targets['per_step'] == config.batch_size == 16


def test_the_gradient_all_reduce_is_present(compiled):
  _, targets, program, _ = compiled
  params = _nbytes(targets['state'].params)
  assert program['collectives']['all-reduce']['count'] >= 1
  # every parameter's gradient is summed over the chips: at least the parameters' bytes
  assert program['collectives']['all-reduce']['bytes'] >= params
  assert program['flops'] > 0 and program['bytes_accessed'] > 0


def test_the_ps_kd_table_is_rows_times_classes_times_4_over_the_chips(compiled):
  config, targets, program, executable = compiled
  state, batch = targets['train'][1]
  rows = parallel.padded_rows(64, DEVICES)
  table_per_chip = rows * config.data.num_classes * 4 // DEVICES
  assert table_per_chip == 10240
  # the compiled program takes a quarter of the rows on each chip
  flat_args = jax.tree.leaves(targets['train'][1])
  table = state.method_states['ps_kd']['table']
  fmt = jax.tree.leaves(executable.input_formats)[flat_args.index(table)]
  shard = fmt.sharding.shard_shape(table.shape)
  assert math.prod(shard) * 4 == table_per_chip
  # with vs without: the arguments without the table are the state and batch alone
  without = _nbytes(state.replace(method_states={})) + _nbytes(batch, DEVICES)
  assert program['unpadded_arguments'] - without == table_per_chip


def test_an_oversized_batch_is_one_line_and_exit_1(tmp_path, capsys):
  out = tmp_path / 'report'
  code = aot_main.main(['aot', '--config', os.path.join(ROOT, 'configs',
                                                        'cifar100_resnet18_ce.py:smoke'),
                        '--topology', 'v5e:2x2', '--programs', 'train', '--out', str(out),
                        '--config.batch_size=1048576', '--config.data.num_examples=1048576'])
  err = capsys.readouterr().err
  assert code == 1
  assert len(err.strip().splitlines()) == 1
  assert err.startswith('error: the compiler refuses it: RESOURCE_EXHAUSTED')
  assert 'lower config.batch_size' in err
  assert not out.exists()


def test_translation_train_and_eval_reported_in_json_and_markdown(tmp_path, capsys):
  out = tmp_path / 'report'
  code = aot_main.main(['aot', '--config', os.path.join(ROOT, 'configs',
                                                        'translation_demo.py:smoke'),
                        '--topology', 'v5e:2x2', '--out', str(out)])
  assert code == 0, capsys.readouterr().err
  printed = capsys.readouterr().out
  report = json.loads((out / 'report.json').read_text())
  assert (out / 'report.md').read_text() in printed
  assert report['unit'] == 'tokens' and report['devices'] == DEVICES
  config = _config('translation_demo.py:smoke')
  # rows: the largest multiple of the chips with rows * max_len <= tokens_per_batch
  rows = config.data.tokens_per_batch // config.data.max_len // DEVICES * DEVICES
  assert report['programs']['train']['per_step'] == rows * config.data.max_len == 480
  train = report['programs']['train']
  assert train['fits'] and 'all-reduce' in train['collectives']
  estimate = train['estimate']
  assert estimate['step_seconds'] == pytest.approx(
      max(estimate['compute_seconds'], estimate['memory_seconds'])
      + estimate['collective_seconds'])
  assert estimate['per_slice_per_second'] == pytest.approx(480 / estimate['step_seconds'])
  assert set(report['programs']) == {'train', 'eval'}
  assert np.isclose(report['chip']['bf16_flops'], 197e12)


def test_a_program_over_the_headroom_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
  """The compiler accepts it, but its total is above 90% of the chip's 16 GB: not fitting."""
  program = dict(memory=dict(total=int(0.95 * 16e9)), flops=1.0, bytes_accessed=1.0,
                 collectives={})
  monkeypatch.setattr(compile_lib, 'compile_program', lambda fn, args: (dict(program), None))
  out = tmp_path / 'report'
  code = aot_main.main(['aot', '--config', os.path.join(ROOT, 'configs',
                                                        'translation_demo.py:smoke'),
                        '--topology', 'v5e:2x2', '--out', str(out)])
  err = capsys.readouterr().err
  assert (code, err) == (1, 'error: the train program needs 14.16 GiB per chip on v5e:2x2, more '
                         'than 90% of its 14.90 GiB of HBM; lower config.batch_size (or use more '
                         'chips)\n')
  assert not out.exists()


def test_a_v4_slice_is_one_megacore_device_per_chip():
  """libtpu's default v4 description lists each chip's two TensorCores as two devices; a real
  v4 slice (and the chip table's per-chip figures) has one megacore device per chip."""
  mesh = compile_lib.topology_mesh('v4:2x2x2')  # 8 chips
  coords = {tuple(d.coords) for d in mesh.devices.flat}
  assert mesh.devices.size == len(coords) == 2 * 2 * 2
  assert compile_lib.topology_mesh('v5p:2x2x2').devices.size == 8
