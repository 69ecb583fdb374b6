"""The bad-input catalogue of the translation task: each bad input gives one `error:` line that
says what to change, exit status 1 and no traceback, leaves an existing workdir byte-identical
and creates none.

Generated as tests/bad_inputs_test.py's image catalogue: every field of the translation schema
(`translation/validation.py`: FIELDS, METHOD_FIELDS) with a wrong type, out of range, NaN, inf;
and every text-source contract (UTF-8, non-empty files and lines, one target line per source
line, evaluation sentences within model.max_len, a readable SentencePiece model, the files
present) broken in each split and side. Each case runs what train.py's main runs
(`tasks.train_and_evaluate`) in-process on an existing workdir and on a path that does not
exist; one case runs the real `python train.py`. The demo, export and `evaluate.py --experiment/--init_from` refusals of a
translation run follow."""
import math
import os
import re
import shutil
import subprocess
import sys

import jax
import ml_collections
import pytest

from configs import common
from sdd_jax import errors
from sdd_jax import evaluation
from sdd_jax import export
from sdd_jax import tasks
from sdd_jax.translation import corpus as corpus_lib
from sdd_jax.translation import demo
from sdd_jax.translation import validation
from tests import workdirs
from tests.bad_inputs_test import bad_values

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CONFIG = os.path.join(ROOT, 'configs', 'translation_demo.py')


def _config(**changes):
  """Label smoothing on the smoke toy corpus, tiny model, one epoch (tests/translation's
  smoke setting)."""
  config = common.translation_smoke(common.translation_recipe('de', 'en'))
  config.num_epochs = 1
  config.update_from_flattened_dict(changes)
  return config


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A tiny translation run stopped after its first step (config.json, a checkpoint, metrics):
  the existing workdir every case must leave alone."""
  path = str(tmp_path_factory.mktemp('existing'))
  assert tasks.train_and_evaluate(_config(), path, stop_after_step=1) == {}
  return path


@pytest.fixture(scope='module')
def corpus(workdir):
  """The smoke toy corpus folder (split files and spm.model), as the run read it."""
  del workdir
  return corpus_lib.folder(_config())


def _main(config, workdir) -> str:
  """What train.py's main runs (`tasks.train_and_evaluate`), in-process: -> the one-line
  message of the UserError that main prints as `error: <message>` with exit status 1
  (`test_train_py_prints_one_line_and_exits_1` runs the real command once)."""
  with pytest.raises(errors.UserError) as info:
    tasks.train_and_evaluate(config, workdir)
  text = str(info.value)
  assert '\n' not in text and text.strip() == text, text
  return text


def _refused(config, workdir, tmp_path, message) -> str:
  """The case refused in one line matching `message`, on the existing workdir (unchanged) and
  on a fresh path (not created)."""
  before = workdirs.snapshot(workdir, folders=True)
  text = _main(config, workdir)
  assert re.search(message, text), text
  assert workdirs.snapshot(workdir, folders=True) == before
  fresh = str(tmp_path / 'fresh' / 'run')
  assert _main(config, fresh) == text
  assert not os.path.exists(os.path.dirname(fresh))
  return text


# ---------------------------------------------------------------------------------------------
# The config schema: every field with each value its kind and bounds refuse.


def _with_value(path, value):
  """The smoke config with `value` at `path`, built from a dict as a config file or a
  config.json can (ConfigDict's type safety would refuse some values on assignment)."""
  tree = _config().to_dict()
  parts = path.split('.')
  if parts[0] == 'methods':
    tree['methods'] = {parts[1]: {parts[2]: value}}
  else:
    node = tree
    for part in parts[:-1]:
      node = node[part]
    node[parts[-1]] = value
  return ml_collections.ConfigDict(tree)


FIELDS = list(validation.FIELDS) + [f for fs in validation.METHOD_FIELDS.values() for f in fs]
SCHEMA_CASES = [(f, label, value) for f in FIELDS for label, value in bad_values(f)
                # config.task: any other name is an unknown task (tests/translation/trainer_test)
                if f.path != 'task']


@pytest.mark.parametrize('field,label,value', SCHEMA_CASES,
                         ids=[f'{f.path}-{label}' for f, label, _ in SCHEMA_CASES])
def test_every_schema_field_refuses_bad_values(workdir, tmp_path, field,
                                               label, value):
  del label
  _refused(_with_value(field.path, value), workdir, tmp_path,
           rf'^config\.{re.escape(field.path)}: must be .*, got .*\(set --config\.'
           rf'{re.escape(field.path)}=\.\.\.\)$')


def test_the_schema_catalogue_covers_every_field_and_nan_inf():
  paths = {f.path for f, _, _ in SCHEMA_CASES}
  assert paths == {f.path for f in FIELDS} - {'task'}
  labels = {(f.path, label) for f, label, _ in SCHEMA_CASES}
  for path in ('optim.lr', 'model.dropout', 'methods.ps_kd.alpha', 'evals.length_penalty'):
    assert {(path, 'nan'), (path, 'inf'), (path, '-inf')} <= labels
  assert ('model.dropout', 'above') in labels and ('seed', 'below') in labels


# Rules across fields and the config's shape (validation.validate beyond single fields).
STRUCTURE = [
    ('heads', {'model.num_heads': 3}, r'^config.model.d_model: must be a multiple of '
                                      r'model.num_heads \(3\), got 32'),
    ('data_max_len', {'data.max_len': 64}, r'^config.data.max_len: must be below model.max_len '
                                           r'\(64\), got 64'),
    ('tokens', {'data.tokens_per_batch': 20}, r'^config.data.tokens_per_batch: must be at least '
                                              r'data.max_len \(40\)'),
    ('files_no_path', {'data.source': 'files', 'data.path': ''},
     r"^config.data.path: must name the folder .* \(set --config.data.path=DIR\)"),
    ('task', {'task': 'translate'}, r"^config.task: unknown task 'translate'.*; known tasks: "),
]


@pytest.mark.parametrize('name,changes,message', STRUCTURE, ids=[c[0] for c in STRUCTURE])
def test_cross_field_rules_are_one_line(workdir, tmp_path, name, changes,
                                       message):
  del name
  _refused(_config(**changes), workdir, tmp_path, message)


def _tree_case(change):
  tree = _config().to_dict()
  change(tree)
  return ml_collections.ConfigDict(tree)


SHAPES = [
    ('unknown_field', lambda t: t['optim'].update(learning_rate=1.0),
     r"^config.optim: unknown field\(s\) \['learning_rate'\]; known: .*"),
    ('unknown_method', lambda t: t['methods'].update(cs_kd={'weight': 1.0}),
     r"^config.methods: unknown field\(s\) \['cs_kd'\]; known: label_smoothing, ps_kd"),
    ('missing_field', lambda t: t['model'].pop('d_model'),
     r'^config.model.d_model: missing; set it in the config file$'),
    ('missing_section', lambda t: t.pop('evals'), r"^config: missing field\(s\) \['evals'\]"),
    ('section_value', lambda t: t.update(optim=0.1), r'^config.optim: must be a section'),
]


@pytest.mark.parametrize('name,change,message', SHAPES, ids=[c[0] for c in SHAPES])
def test_config_shape_mistakes_are_one_line(workdir, tmp_path, name, change,
                                           message):
  del name
  _refused(_tree_case(change), workdir, tmp_path, message)


# ---------------------------------------------------------------------------------------------
# The text sources: every contract broken in each split and side of a copy of the corpus.

SPLITS, SIDES = ('train', 'valid', 'test'), ('src', 'tgt')
FILES = [(split, side) for split in SPLITS for side in SIDES]
LONG = ' '.join(['Wort'] * 5000)  # ~5,000 pieces: far over model.max_len 64


def _lines(folder, split, side):
  with open(os.path.join(folder, f'{split}.{side}'), encoding='utf-8') as f:
    return f.read().splitlines()


def _replace_line(folder, split, side, number, content: bytes):
  """Line `number` (1-based) of the file replaced by raw `content`."""
  lines = [line.encode() for line in _lines(folder, split, side)]
  lines[number - 1] = content
  with open(os.path.join(folder, f'{split}.{side}'), 'wb') as f:
    f.write(b'\n'.join(lines) + b'\n')


def _write(folder, name, content: bytes):
  with open(os.path.join(folder, name), 'wb') as f:
    f.write(content)


def _spm_bytes(folder):
  with open(os.path.join(folder, 'spm.model'), 'rb') as f:
    return f.read()


def _file(split, side):
  return re.escape(f'{split}.{side}')


# (id, change(folder) of the copied corpus, expected message)
TEXT_CASES = []
for _split, _side in FILES:
  _name = f'{_split}.{_side}'
  TEXT_CASES += [
      (f'latin1-{_name}', lambda d, s=_split, e=_side: _replace_line(
          d, s, e, 3, 'Grüße aus Köln'.encode('latin-1')),
       rf'/{_file(_split, _side)} line 3 is not UTF-8 \(byte 0xfc\); convert the file to UTF-8'),
      (f'empty_file-{_name}', lambda d, n=_name: _write(d, n, b''),
       rf'/{_file(_split, _side)} is empty; put the sentences there, one per line$'),
      (f'blank_file-{_name}', lambda d, n=_name: _write(d, n, b'\n \n\n'),
       rf'/{_file(_split, _side)} is empty'),
      (f'empty_line-{_name}', lambda d, s=_split, e=_side: _replace_line(d, s, e, 5, b'  '),
       rf'/{_file(_split, _side)} line 5 is empty; every line holds a sentence: delete line 5 of '
       rf'both {_split}.src and {_split}.tgt, or fill it in$'),
      (f'extra_line-{_name}', lambda d, n=_name: _write(
          d, n, open(os.path.join(d, n), 'rb').read() + b'one more\n'),
       rf'/{_split}.src has (16|17|200|201) lines but .*/{_split}.tgt has (16|17|200|201); a '
       r'parallel split needs one target line per source line$'),
      (f'missing-{_name}', lambda d, n=_name: os.remove(os.path.join(d, n)),
       rf'/{_file(_split, _side)} is missing; put one sentence per line in '),
      (f'folder-{_name}', lambda d, n=_name: (os.remove(os.path.join(d, n)),
                                              os.mkdir(os.path.join(d, n))),
       rf'/{_file(_split, _side)} is a folder, not a file; '),
  ]
for _split in SPLITS:
  TEXT_CASES.append((f'both_empty-{_split}', lambda d, s=_split: (
      _write(d, f'{s}.src', b''), _write(d, f'{s}.tgt', b'')),
                     rf'/{_split}.src is empty; put the sentences there'))
for _split in ('valid', 'test'):  # training drops pairs over data.max_len instead (see below)
  for _side in SIDES:
    TEXT_CASES.append((f'too_long-{_split}.{_side}', lambda d, s=_split, e=_side: _replace_line(
        d, s, e, 7, LONG.encode()), rf'/{_file(_split, _side)} line 7 has \d{{4,}} tokens, more '
        r'than model.max_len 64 allows \(63 \+ EOS\); shorten or delete line 7 of both '
        rf'{_split}.src and {_split}.tgt, or raise config.model.max_len$'))
TEXT_CASES += [
    ('all_train_too_long', lambda d: _write(d, 'train.src', (b'Wort ' * 45 + b'\n') * 200),
     r'^no training sentence fits max_len 40 \(EOS included; the shortest pair needs \d{2,}\); '
     r'raise config.data.max_len \(below model.max_len\) or shorten the training sentences$'),
    ('spm_truncated', lambda d: _write(d, 'spm.model', _spm_bytes(d)[:len(_spm_bytes(d)) // 2]),
     r'/spm.model is not a readable SentencePiece model \(INTERNAL: .*\); it may be truncated or '
     r'another kind of file: train it again with python -m sdd_jax.translation.spm'),
    ('spm_text', lambda d: _write(d, 'spm.model', b'this is not a model\n'),
     r'/spm.model is not a readable SentencePiece model'),
    ('spm_empty', lambda d: _write(d, 'spm.model', b''),
     r'the SentencePiece model .*/spm.model is empty; train it again with python -m '
     r'sdd_jax.translation.spm'),
    ('spm_missing', lambda d: os.remove(os.path.join(d, 'spm.model')),
     r'/spm.model is missing; train it with python -m sdd_jax.translation.spm --data '),
    ('spm_folder', lambda d: (os.remove(os.path.join(d, 'spm.model')),
                              os.mkdir(os.path.join(d, 'spm.model'))),
     r'/spm.model is a folder, not a SentencePiece model; set config.data.spm_model'),
    ('path_missing', lambda d: shutil.rmtree(d),
     r"^config.data.path '.*' is not a folder; give the folder holding"),
    ('path_file', lambda d: (shutil.rmtree(d), _write(os.path.dirname(d), 'data', b'x')),
     r"^config.data.path '.*' is not a folder"),
]


@pytest.mark.parametrize('name,change,message', TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_every_broken_text_source_is_one_line(workdir, corpus, tmp_path,
                                             name, change, message):
  del name
  data = str(tmp_path / 'data')
  shutil.copytree(corpus, data)
  change(data)
  config = _config(**{'data.source': 'files', 'data.path': data})
  _refused(config, workdir, tmp_path, message)


def test_train_py_prints_one_line_and_exits_1(corpus, tmp_path):
  """The issue's example through the real command: a 5,000-token test sentence is refused
  before training, in one line, and no workdir is created."""
  data = str(tmp_path / 'data')
  shutil.copytree(corpus, data)
  _replace_line(data, 'test', 'src', 7, LONG.encode())
  workdir = str(tmp_path / 'run')
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=1'}
  result = subprocess.run(
      [sys.executable, 'train.py', f'--config={DEMO_CONFIG}:smoke', f'--workdir={workdir}',
       '--config.data.source=files', f'--config.data.path={data}'], cwd=ROOT, env=env,
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr[-2000:]
  assert re.match(r'error: .*/test\.src line 7 has \d{4,} tokens, more than model.max_len 64',
                  lines[0]), lines[0]
  assert not os.path.exists(workdir)


def test_the_text_catalogue_covers_every_file_and_contract():
  names = {c[0] for c in TEXT_CASES}
  for kind in ('latin1', 'empty_file', 'empty_line', 'extra_line', 'missing'):
    assert {f'{kind}-{s}.{e}' for s, e in FILES} <= names
  assert {f'too_long-{s}.{e}' for s in ('valid', 'test') for e in SIDES} <= names


def test_an_over_long_training_pair_is_dropped_not_refused(corpus, tmp_path):
  """Training keeps its semantics: a pair longer than data.max_len is left out and counted
  (text_data.TranslationLoader), while the same sentence in valid or test is refused above."""
  data = str(tmp_path / 'data')
  shutil.copytree(corpus, data)
  config = _config(**{'data.source': 'files', 'data.path': data})
  dropped = [corpus_lib.create_corpus(config, num_devices=len(jax.devices())).loader.num_dropped]
  _replace_line(data, 'train', 'tgt', 7, LONG.encode())
  dropped.append(corpus_lib.create_corpus(config, num_devices=len(jax.devices())).loader
                 .num_dropped)
  assert dropped[1] == dropped[0] + 1


# ---------------------------------------------------------------------------------------------
# The other entry points on a translation run: the demo's flags, export, evaluate.py.


def _one_line(capsys, code, status=1):
  assert code == status
  captured = capsys.readouterr()
  assert 'Traceback' not in captured.err + captured.out
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), captured.err
  return lines[0]


DEMO_CASES = [
    ('seeds_zero', ['--seeds', '0'], r'--seeds 0: .*give --seeds 1 or more$'),
    ('seeds_negative', ['--seeds', '-2'], r'--seeds -2: .*give --seeds 1 or more$'),
    ('time_steps', ['--seeds', '1', '--time_steps', '-1'],
     r'--time_steps -1: give a number of steps >= 0'),
    ('image_config', ['--config', os.path.join(ROOT, 'configs', 'demo.py')],
     r'a classification config; the demo compares translation arms: give a translation config'),
    ('no_config', ['--config', os.path.join(ROOT, 'configs', 'translation_dmeo.py')],
     r'--config .*translation_dmeo.py: no such file; did you mean translation_demo.py'),
    ('bad_field', ['--config', 'BAD_CONFIG'], r'config.num_epochs: must be an integer >= 1, '
                                              r'got 0 \(set --config.num_epochs=...\)$'),
]
BAD_CONFIG = """from configs import translation_demo

def get_config(arg=None):
  config = translation_demo.get_config(arg)
  config.num_epochs = 0
  return config
"""


@pytest.mark.parametrize('name,args,message', DEMO_CASES, ids=[c[0] for c in DEMO_CASES])
def test_bad_demo_flags_are_one_line_and_write_nothing(capsys, tmp_path, name, args, message):
  del name
  root = tmp_path / 'demo'
  (tmp_path / 'bad_config.py').write_text(BAD_CONFIG)
  args = [str(tmp_path / 'bad_config.py') if a == 'BAD_CONFIG' else a for a in args]
  line = _one_line(capsys, demo.main(['--workdir', str(root), *args]))
  assert re.search(message, line), line
  assert not root.exists()


def test_a_demo_workdir_that_is_a_file_is_refused(capsys, tmp_path):
  path = tmp_path / 'file'
  path.write_bytes(b'keep')
  line = _one_line(capsys, demo.main(['--workdir', str(path), '--seeds', '1']))
  assert re.search(r'--workdir .*file is a file; give a folder', line), line
  assert path.read_bytes() == b'keep'


def test_a_demo_flag_of_the_wrong_type_is_argparses_exit_2(capsys, tmp_path):
  with pytest.raises(SystemExit) as info:
    demo.main(['--workdir', str(tmp_path / 'demo'), '--seeds', 'three'])
  assert info.value.code == 2
  assert "argument --seeds: invalid int value: 'three'" in capsys.readouterr().err


def test_export_of_a_translation_workdir_is_one_line(capsys, workdir, tmp_path):
  before = workdirs.snapshot(workdir, folders=True)
  out = tmp_path / 'out' / 'model.safetensors'
  line = _one_line(capsys, export.main(['--workdir', workdir, '--out', str(out)]))
  assert re.search(r'is a translation run: export writes image classifiers in torchvision\'s '
                   r'layout; .*evaluated with python evaluate.py --workdir', line), line
  assert not (tmp_path / 'out').exists()
  assert workdirs.snapshot(workdir, folders=True) == before


@pytest.mark.parametrize('init_from', ['weights.safetensors', None], ids=['init_from', 'none'])
def test_evaluate_experiment_of_a_translation_config_is_refused(workdir, tmp_path, init_from):
  """evaluate.py --experiment <translation config> [--init_from F]: advice for translation,
  not about image fields; nothing written (a fresh folder stays absent, a run unchanged)."""
  weights = str(tmp_path / 'weights.safetensors') if init_from else None
  message = (r"--init_from: weights in torchvision's layout are image networks; .* is a "
             r'translation config: leave out --experiment and --init_from and evaluate a trained '
             r'translation workdir \(python evaluate.py --workdir DIR' if init_from else
             r'--experiment: only image configs evaluate weights from elsewhere; .* is a '
             r'translation config: leave out --experiment and evaluate a trained')
  before = workdirs.snapshot(workdir, folders=True)
  for target in (workdir, str(tmp_path / 'fresh')):
    with pytest.raises(evaluation.EvaluationError, match=message) as info:
      evaluation.evaluate_workdir(target, init_from=weights,
                                  experiment=DEMO_CONFIG + ':smoke')
    assert '\n' not in str(info.value)
  assert workdirs.snapshot(workdir, folders=True) == before
  assert not (tmp_path / 'fresh').exists()


def test_nan_and_inf_reach_the_schema_cases():
  """bad_values (shared with the image catalogue) gives the translation numbers NaN and inf."""
  lr = next(f for f in FIELDS if f.path == 'optim.lr')
  values = dict(bad_values(lr))
  assert math.isnan(values['nan']) and values['inf'] == math.inf
