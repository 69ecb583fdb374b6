"""Evaluation of a translation workdir: dispatch through the task registry, hypotheses in line
order (padding rows dropped), BLEU recomputed from the written files with sacrebleu, NLL
recomputed by hand over unbucketed rows, the results.json record, one-line errors."""
import json
import os
import types

import flax
import jax
import ml_collections
import numpy as np
import pytest
import sacrebleu

from configs import common
from sdd_jax.workdir import checkpoint
from sdd_jax import evaluation
from sdd_jax.classification import evaluation as classification_evaluation
from sdd_jax.workdir import restore as restore_lib
from sdd_jax import parallel
from sdd_jax import tasks
from sdd_jax.workdir import claim as workdir_lib
from sdd_jax.translation import corpus as corpus_lib
from sdd_jax.translation import decode
from sdd_jax.translation import evaluation as translation_evaluation
from sdd_jax.translation import model as model_lib
from sdd_jax.translation import spm
from sdd_jax.translation.tokens import BOS, EOS, PAD
from tests import workdirs


def _config():
  """Label smoothing, tiny model, the smoke toy corpus, one epoch."""
  config = common.translation_smoke(common.translation_recipe('de', 'en'))
  config.num_epochs = 1
  return config


@flax.struct.dataclass
class _State:
  step: jax.Array
  params: dict


STEP = 12


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A workdir as training leaves it (config.json, a checkpoint at step 12), without the
  training: random parameters of the smoke model (their translations score BLEU 0, so the
  scoring test replaces the search by known partial translations)."""
  workdir = str(tmp_path_factory.mktemp('translation_run'))
  config = _config()
  corpus_lib.prepare(config)
  with workdir_lib.Claim(workdir, config):
    corpus = corpus_lib.create_corpus(config, num_devices=len(jax.devices()))
    model = model_lib.create_model(config.model, corpus.tokenizer.vocab_size)
    sample = np.ones((1, 2), np.int32)
    params = jax.jit(model.init, static_argnames='train')(jax.random.key(0), sample, sample,
                                                          train=False)['params']
    checkpointer = checkpoint.Checkpointer(workdir, max_to_keep=1)
    checkpointer.save(_State(step=np.int32(STEP), params=params))
    checkpointer.close()
  return workdir


def _lines(path):
  with open(path, encoding='utf-8') as f:
    return f.read().splitlines()


def _text(split, side):
  """The toy corpus's lines (the folder corpus.py keeps it in)."""
  return _lines(os.path.join(corpus_lib.folder(_config()), f'{split}.{side}'))


def _hand_nll(params, split):
  """Per-token NLL of `split` from one padded batch of every pair (no buckets), NumPy softmax."""
  tokenizer = spm.load_tokenizer(corpus_lib.spm_model(_config()))
  src_ids = tokenizer.encode(_text(split, 'src'))
  tgt_ids = tokenizer.encode(_text(split, 'tgt'))
  rows = len(src_ids)
  src = np.full((rows, max(len(s) for s in src_ids) + 1), PAD, np.int32)
  tgt_in = np.full((rows, max(len(t) for t in tgt_ids) + 1), PAD, np.int32)
  tgt_out = tgt_in.copy()
  for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
    src[i, :len(s) + 1] = list(s) + [EOS]
    tgt_in[i, :len(t) + 1] = [BOS] + list(t)
    tgt_out[i, :len(t) + 1] = list(t) + [EOS]
  model = model_lib.create_model(_config().model, tokenizer.vocab_size)
  logits = np.asarray(jax.jit(model.apply, static_argnames='train')(
      {'params': params}, src, tgt_in, train=False), np.float64)
  logits -= logits.max(-1, keepdims=True)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  picked = np.take_along_axis(log_probs, tgt_out[..., None], axis=-1)[..., 0]
  real = tgt_out != PAD
  return -picked[real].sum() / real.sum()


def _partial_translation(reference):
  """A hypothesis that matches part of `reference`: its last word dropped (shorter, so the
  brevity penalty applies: BLEU is not symmetric) and its first two words swapped."""
  words = reference.split()[:-1]
  return ' '.join(words[1::-1] + words[2:])


def _known_search(tokenizer):
  """A stand-in for `decode.make_translate_fn` whose output for each valid or test source line
  is the tokens of `_partial_translation` of its reference, then EOS and PAD."""
  sources, targets = [], []
  for split in ('valid', 'test'):
    sources += [tuple(ids) for ids in tokenizer.encode(_text(split, 'src'))]
    targets += tokenizer.encode([_partial_translation(r) for r in _text(split, 'tgt')])
  assert len(set(sources)) == len(sources)  # a source line tells its reference
  known = dict(zip(sources, targets))

  def make_translate_fn(model, mesh, **kwargs):
    del model, mesh, kwargs

    def translate_fn(variables, src):
      del variables
      out = np.full((src.shape[0], 64), PAD, np.int32)
      for row, ids in enumerate(np.asarray(src).tolist()):
        found = known.get(tuple(ids[:ids.index(EOS)]), np.zeros(0, np.int32))  # padding rows
        out[row, :len(found) + 1] = list(found) + [EOS]
      return out

    return translate_fn

  return make_translate_fn


def test_evaluate_py_path_scores_a_translation_workdir(trained, monkeypatch):
  """evaluate.py's path (the task registry) on known partial translations, so that BLEU is
  neither 0 nor 100 and not symmetric: sacrebleu run here on the written hypotheses and the
  raw references, in that order. The search itself: the tests below."""
  workdir = trained
  tokenizer = spm.load_tokenizer(corpus_lib.spm_model(_config()))
  monkeypatch.setattr(decode, 'make_translate_fn', _known_search(tokenizer))
  outcome = evaluation.evaluate_workdir(workdir)  # config.task == 'translation' -> registry
  assert set(outcome.metrics) == {f'{split}/{name}' for split in ('valid', 'test')
                                  for name in ('bleu', 'bleu_tok', 'nll')}
  assert outcome.step == STEP and not outcome.skipped
  folder = os.path.join(workdir, 'evals', 'translation')
  with open(os.path.join(folder, 'results.json')) as f:
    results = json.load(f)
  assert results['checkpoint step'] == STEP
  tokenized = sacrebleu.metrics.BLEU(tokenize='none', smooth_method='none')
  for split in ('valid', 'test'):
    hyps = _lines(os.path.join(folder, f'{split}.hyp'))
    refs = _text(split, 'tgt')
    assert hyps == [_partial_translation(r) for r in refs] and len(hyps) == 16
    for name, expected, swapped in (
        ('bleu', sacrebleu.corpus_bleu(hyps, [refs]).score,
         sacrebleu.corpus_bleu(refs, [hyps]).score),
        ('bleu_tok', tokenized.corpus_score(hyps, [refs]).score,
         tokenized.corpus_score(refs, [hyps]).score)):
      assert 5 < expected < 95 and abs(swapped - expected) > 1, (name, expected, swapped)
      assert outcome.metrics[f'{split}/{name}'] == pytest.approx(expected, abs=1e-9), name
    assert results[f'{split}/bleu'] == outcome.metrics[f'{split}/bleu']
    assert 'tok:13a' in results[f'{split}/signature']


def test_nll_equals_a_hand_computation_over_unbucketed_rows(trained):
  workdir = trained
  variables, _ = restore_lib.restore_checkpoint_variables(_config(), workdir,
                                                      parallel.create_mesh())
  figures = translation_evaluation.evaluate_translation(_config(), workdir, 'valid',
                                                        params=variables['params'], step=7)
  assert figures['nll'] == pytest.approx(_hand_nll(variables['params'], 'valid'),
                                         rel=1e-4)
  assert set(figures) == {'bleu', 'bleu_tok', 'nll', 'signature'}
  with open(os.path.join(workdir, 'evals', 'translation', 'results.json')) as f:
    assert json.load(f)['checkpoint step'] == 7


def test_one_line_errors(trained, tmp_path):
  workdir = trained
  with pytest.raises(evaluation.EvaluationError, match="'train' is not a split"):
    evaluation.evaluate_workdir(workdir, names=['train'])
  with pytest.raises(evaluation.EvaluationError,
                     match='--config.evals.odin.sets: a translation workdir is evaluated with'):
    evaluation.evaluate_workdir(workdir, overrides={'evals.odin.sets': ('svhn',)})
  with pytest.raises(evaluation.EvaluationError, match='choose one of valid, test'):
    translation_evaluation.evaluate_translation(_config(), workdir, 'train')
  empty = tmp_path / 'untrained'
  empty.mkdir()
  (empty / 'config.json').write_text(open(os.path.join(workdir, 'config.json')).read())
  with pytest.raises(evaluation.EvaluationError, match='no checkpoint'):
    evaluation.evaluate_workdir(str(empty))


class _TokensAsText:
  """Fake tokenizer: a hypothesis is its token ids up to EOS, as text."""
  vocab_size = 20

  def decode(self, ids):
    ids = list(np.asarray(ids))
    return ' '.join(str(i) for i in ids[:ids.index(EOS)] if i != PAD)


def test_hypotheses_go_to_their_line_and_padding_rows_are_dropped():
  model = model_lib.Transformer(vocab_size=20, num_encoder_layers=1, num_decoder_layers=1,
                                d_model=16, ffn_dim=32, num_heads=2, max_len=32)
  rng = np.random.default_rng(0)
  src = rng.integers(4, 20, size=(16, 5)).astype(np.int32)
  src[:, -1] = EOS
  params = jax.jit(model.init, static_argnames='train')(jax.random.key(0), src, src,
                                                        train=False)['params']
  params = jax.tree.map(lambda x: x * 3, params)  # peaked outputs: distinct hypotheses
  # Two batches of 8 rows; lines 0..10 in a shuffled order, 5 padding rows (index 0, masked).
  order = rng.permutation(11)
  index = np.concatenate([order, np.zeros(5, int)]).astype(np.int32)
  mask = np.arange(16) < 11
  batches = [{'src': src[i:i + 8], 'mask': mask[i:i + 8], 'index': index[i:i + 8]}
             for i in (0, 8)]
  corpus = types.SimpleNamespace(tokenizer=_TokensAsText(), eval_batches={'test': batches},
                                 references={'test': [''] * 11})
  config = ml_collections.ConfigDict(
      {'evals': dict(beam_size=2, length_penalty=1.0, max_len_a=1.0, max_len_b=2)})
  mesh = parallel.create_mesh()
  hyps = translation_evaluation.TranslationEvaluator(config, model, mesh, corpus).translate(
      params, 'test')
  tokens = np.asarray(jax.jit(decode.beam_search, static_argnums=0, static_argnames=(
      'beam_size', 'length_penalty', 'max_len'))(model, {'params': params}, src, beam_size=2,
                                                   length_penalty=1.0, max_len=8))
  expected = [''] * 11
  for row in range(11):
    expected[index[row]] = _TokensAsText().decode(tokens[row])
  assert hyps == expected
  assert len(set(hyps)) > 5


def test_every_task_names_an_evaluation():
  assert set(tasks.TASKS.names()) >= {'classification', 'translation'}
  for name in tasks.TASKS.names():
    assert callable(tasks.TASKS.get(name).evaluate), name
  assert tasks.TASKS.get('translation').evaluate is translation_evaluation.evaluate
  assert tasks.TASKS.get('classification').evaluate is classification_evaluation.evaluate


def test_results_json_is_strict_json_when_a_figure_is_nan_or_inf(tmp_path):
  """evals/translation/results.json follows the convention of every file a run writes
  (`workdir/jsonio.py`): NaN and ±inf as null, and an update reads the null back."""
  workdir = str(tmp_path)
  translation_evaluation._write(workdir, 'valid', ['a'], {'bleu': float('nan'),
                                                          'nll': float('inf')}, step=3)
  translation_evaluation._write(workdir, 'test', ['b'], {'bleu': 1.5, 'nll': -float('inf')},
                                step=None)
  path = os.path.join(workdir, *translation_evaluation.FOLDER, 'results.json')
  assert workdirs.strict_json(path) == {'checkpoint step': 3, 'valid/bleu': None,
                                        'valid/nll': None, 'test/bleu': 1.5, 'test/nll': None}
