"""spm: the joint SentencePiece vocabulary trained in the test on the toy corpus."""
import re

import numpy as np
import pytest
import sentencepiece

from sdd_jax.errors import DataError
from sdd_jax.translation import spm, toy_corpus
from sdd_jax.translation.text_files import read_split
from sdd_jax.translation.tokens import BOS, EOS, PAD, UNK


@pytest.fixture(scope='module')
def corpus_dir(tmp_path_factory):
  return toy_corpus.write_toy_corpus(tmp_path_factory.mktemp('toy'), 400, 30, 30, seed=0)


@pytest.mark.parametrize('model_type', ['unigram', 'bpe'])
def test_round_trip_and_special_ids(corpus_dir, tmp_path, model_type):
  model = spm.train_tokenizer(corpus_dir, 60, model_type, out_prefix=tmp_path / 'm')
  assert model == tmp_path / 'm.model' and (tmp_path / 'm.vocab').is_file()
  tokenizer = spm.load_tokenizer(model)
  assert tokenizer.vocab_size == 60
  pieces = [tokenizer.processor.id_to_piece(i) for i in (PAD, UNK, BOS, EOS)]
  assert pieces == ['<pad>', '<unk>', '<s>', '</s>'] and (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
  for split in ('train', 'valid', 'test'):
    for lines in read_split(corpus_dir, split):
      ids = tokenizer.encode(lines)
      assert all(x.dtype == np.int32 and x.ndim == 1 and len(x) for x in ids)
      assert not any(np.isin(x, [PAD, UNK, BOS, EOS]).any() for x in ids)  # no specials
      assert [tokenizer.decode(x) for x in ids] == lines


def test_decode_stops_at_eos_and_ignores_pad_and_bos(corpus_dir, tmp_path):
  tokenizer = spm.load_tokenizer(spm.train_tokenizer(corpus_dir, 60, out_prefix=tmp_path / 'm'))
  first, second = tokenizer.encode(['tu bokalu sira retido', 'te pumo pedigi kasa'])
  tokens = np.concatenate([[BOS], first, [EOS], second, [PAD, PAD]])
  assert tokenizer.decode(tokens) == 'tu bokalu sira retido'
  assert tokenizer.decode(np.concatenate([[BOS], second, [PAD, PAD]])) == 'te pumo pedigi kasa'
  rows = np.stack([tokens, np.concatenate([second, [PAD] * (len(tokens) - len(second))])])
  assert tokenizer.decode_batch(rows) == ['tu bokalu sira retido', 'te pumo pedigi kasa']


def test_training_twice_gives_the_same_bytes(corpus_dir, tmp_path):
  for model_type in ('unigram', 'bpe'):
    model = spm.train_tokenizer(corpus_dir, 60, model_type, out_prefix=tmp_path / model_type)
    first = model.read_bytes()
    assert spm.train_tokenizer(corpus_dir, 60, model_type,
                               out_prefix=tmp_path / model_type).read_bytes() == first


def test_cli_writes_dir_spm_model(corpus_dir, tmp_path, capsys):
  data = toy_corpus.write_toy_corpus(tmp_path / 'data', 100, 5, 5, seed=2)
  assert spm.main(['--data', str(data), '--vocab_size', '50', '--model_type', 'bpe']) == 0
  assert spm.load_tokenizer(data / 'spm.model').vocab_size == 50
  assert (data / 'spm.vocab').is_file() and 'wrote' in capsys.readouterr().out


def test_one_line_errors(corpus_dir, tmp_path, capsys):
  with pytest.raises(DataError, match=r'--vocab_size 100000 is too large for the training text '
                     r'of .*: SentencePiece unigram allows at most \d+; lower --vocab_size'):
    spm.train_tokenizer(corpus_dir, 100_000, out_prefix=tmp_path / 'big')
  assert not list(tmp_path.iterdir())  # nothing half-written
  assert spm.main(['--data', str(tmp_path), '--vocab_size', '50']) == 1
  err = capsys.readouterr().err
  assert re.fullmatch(r'error: no file .*train\.src: put the training sentences there, one per '
                      r'line .*\n', err)
  with pytest.raises(DataError, match='--vocab_size 4 leaves no room'):
    spm.train_tokenizer(corpus_dir, 4)
  with pytest.raises(DataError, match="--model_type 'word' is not one of unigram, bpe"):
    spm.train_tokenizer(corpus_dir, 50, 'word')
  with pytest.raises(DataError, match='no SentencePiece model .*; train one with python -m '
                     'sdd_jax.translation.spm'):
    spm.load_tokenizer(tmp_path / 'missing.model')


def test_a_model_with_other_special_ids_is_refused(corpus_dir, tmp_path):
  sentencepiece.SentencePieceTrainer.train(input=str(corpus_dir / 'train.src'), vocab_size=40,
                                           model_prefix=str(tmp_path / 'default'),
                                           minloglevel=2)  # unk 0, bos 1, eos 2, no pad
  with pytest.raises(DataError, match=r'pad/unk/bos/eos ids \(-1, 0, 1, 2\), not \(0, 1, 2, 3\)'):
    spm.load_tokenizer(tmp_path / 'default.model')


SPM_CLI_CASES = [
    ('latin1', 'Gr\xfc\xdfe\nzwei\n'.encode('latin-1'), b'greetings\ntwo\n',
     r'train\.src line 1 is not UTF-8 \(byte 0xfc\); convert the file to UTF-8'),
    ('empty', b'', b'', r'train\.src is empty; put the sentences there'),
    ('counts', b'eins\nzwei\n', b'one\n', r'train\.src has 2 lines but .*train\.tgt has 1'),
    ('few_pieces', b'abcdefghij klmnopqrstu\n', b'vwxyz ABCDEFGHIJ\n',
     r'--vocab_size 20 is too small for the training text of .*: its characters and the special '
     r'pieces need \d+; raise --vocab_size'),
]


@pytest.mark.parametrize('name,src,tgt,message', SPM_CLI_CASES, ids=[c[0] for c in SPM_CLI_CASES])
def test_bad_training_text_is_one_line_and_writes_no_model(tmp_path, capsys, name, src, tgt,
                                                           message):
  """sentencepiece's own RuntimeErrors (no sentences, too few pieces) and our text contract
  become one line; the data folder keeps only its two files."""
  del name
  (tmp_path / 'train.src').write_bytes(src)
  (tmp_path / 'train.tgt').write_bytes(tgt)
  assert spm.main(['--data', str(tmp_path), '--vocab_size', '20']) == 1
  captured = capsys.readouterr()
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and 'Traceback' not in captured.err, captured.err
  assert re.search(message, lines[0]), lines[0]
  assert sorted(p.name for p in tmp_path.iterdir()) == ['train.src', 'train.tgt']
