"""The joint SentencePiece vocabulary of a parallel corpus: training, loading, encode/decode.

One vocabulary for both languages (as fairseq's joint BPE for IWSLT), trained on the training
split's two sides `<data>/train.src` and `<data>/train.tgt`, with the special ids of tokens.py
(pad 0, unk 1, bos 2, eos 3). The documented data-preparation command is

  python -m sdd_jax.translation.spm --data DIR --vocab_size 10000 [--model_type unigram|bpe]

which writes `DIR/spm.model` and `DIR/spm.vocab` (into a temporary name first, renamed when
training succeeded, so a failed run leaves no half-written model). Training is deterministic:
the same text, flags and output path give the same model file bytes (tested; the file records
its input and output paths; SentencePiece runs with `num_threads=1` and reads every sentence,
`input_sentence_size=0`).
"""
import argparse
import os
import pathlib
import re
import sys
from typing import List, Optional, Sequence

from etils import epath
import numpy as np
import sentencepiece

from sdd_jax.errors import DataError
from sdd_jax.errors import UserError
from sdd_jax.translation import text_files
from sdd_jax.translation.tokens import BOS, EOS, PAD, UNK

MODEL_TYPES = ('unigram', 'bpe')
MODEL_NAME = 'spm'  # DIR/spm.model, DIR/spm.vocab


class Tokenizer:
  """A loaded SentencePiece model: text <-> int32 ids of the joint vocabulary."""

  def __init__(self, processor: sentencepiece.SentencePieceProcessor):
    specials = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
    if specials != (PAD, UNK, BOS, EOS):
      raise DataError(f'the SentencePiece model has pad/unk/bos/eos ids {specials}, not '
                      f'{(PAD, UNK, BOS, EOS)}; train it with python -m sdd_jax.translation.spm')
    self.processor = processor
    self.vocab_size = processor.get_piece_size()

  def encode(self, lines: Sequence[str]) -> List[np.ndarray]:
    """-> one int32 [length] array of piece ids per line, without BOS or EOS."""
    return [np.asarray(ids, np.int32) for ids in self.processor.encode(list(lines))]

  def decode(self, ids) -> str:
    """int [length] ids -> text: stops at the first EOS, ignores PAD and BOS."""
    ids = [int(i) for i in ids]
    if EOS in ids:
      ids = ids[:ids.index(EOS)]
    return self.processor.decode([i for i in ids if i not in (PAD, BOS)])

  def decode_batch(self, tokens) -> List[str]:
    """int [batch, length] -> one `decode`d line per row."""
    return [self.decode(row) for row in np.asarray(tokens)]


def load_tokenizer(model_file) -> Tokenizer:
  """Reads a SentencePiece model (a local or epath-supported remote path)."""
  path = epath.Path(model_file)
  if not path.exists():
    raise DataError(f'no SentencePiece model {path}; train one with python -m '
                    f'sdd_jax.translation.spm --data DIR --vocab_size N')
  retrain = 'train it again with python -m sdd_jax.translation.spm --data DIR --vocab_size N'
  data = path.read_bytes()
  if not data:
    raise DataError(f'the SentencePiece model {path} is empty; {retrain}')
  try:
    processor = sentencepiece.SentencePieceProcessor(model_proto=data)
  except RuntimeError as e:  # sentencepiece's 'INTERNAL: ...' for a damaged or foreign file
    cause = ' '.join(str(e).split())[:120]
    raise DataError(f'{path} is not a readable SentencePiece model ({cause}); it may be '
                    f'truncated or another kind of file: {retrain}') from None
  return Tokenizer(processor)


def train_tokenizer(path, vocab_size: int, model_type: str = 'unigram',
                    out_prefix=None) -> pathlib.Path:
  """Trains the joint vocabulary on `path/train.src` + `path/train.tgt` (local files).

  Args:
    path: the data folder.
    vocab_size: pieces in the vocabulary, the 4 specials included.
    model_type: 'unigram' or 'bpe'.
    out_prefix: where to write `<out_prefix>.model` and `.vocab`; default `path/spm`.

  Returns:
    The path of the written `.model` file.
  """
  path = pathlib.Path(path)
  if model_type not in MODEL_TYPES:
    raise DataError(f'--model_type {model_type!r} is not one of {", ".join(MODEL_TYPES)}')
  if vocab_size <= 4:
    raise DataError(f'--vocab_size {vocab_size} leaves no room beside the 4 special pieces; '
                    f'use a larger one')
  inputs = [path / 'train.src', path / 'train.tgt']
  for file in inputs:
    if not file.is_file():
      raise DataError(f'no file {file}: put the training sentences there, one per line '
                      f'(the layout is DIR/{{train,valid,test}}.{{src,tgt}})')
  text_files.read_split(path, 'train')  # UTF-8, not empty, one target line per source line
  out_prefix = pathlib.Path(out_prefix) if out_prefix else path / MODEL_NAME
  out_prefix.parent.mkdir(parents=True, exist_ok=True)
  # A fixed scratch prefix (not a random temporary name): the model file records its prefix,
  # and a fixed one keeps the bytes of two trainings on the same text identical.
  prefix = str(out_prefix) + '.partial'
  try:
    sentencepiece.SentencePieceTrainer.train(
        input=[str(f) for f in inputs], model_prefix=prefix, vocab_size=vocab_size,
        model_type=model_type, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
        character_coverage=1.0, input_sentence_size=0, num_threads=1, minloglevel=2)
  except RuntimeError as e:
    limit = re.search(r'Vocabulary size too high .*<= *(\d+)', str(e))
    if limit:
      raise DataError(f'--vocab_size {vocab_size} is too large for the training text of {path}: '
                      f'SentencePiece {model_type} allows at most {limit.group(1)}; lower '
                      f'--vocab_size') from None
    chars = re.search(r'smaller than required_chars\. *(\d+) vs (\d+)', str(e))
    if chars:
      raise DataError(f'--vocab_size {vocab_size} is too small for the training text of {path}: '
                      f'its characters and the special pieces need {chars.group(2)}; raise '
                      f'--vocab_size') from None
    cause = ' '.join(str(e).split())[:160]
    raise DataError(f'SentencePiece cannot train on {inputs[0]} and {inputs[1]} ({cause}); check '
                    f'those files') from None
  finally:
    trained = os.path.exists(prefix + '.model') and os.path.exists(prefix + '.vocab')
    for suffix in ('.vocab', '.model'):  # the model last: its presence means both are whole
      if trained:
        os.replace(prefix + suffix, str(out_prefix) + suffix)
      elif os.path.exists(prefix + suffix):
        os.remove(prefix + suffix)
  return pathlib.Path(str(out_prefix) + '.model')


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m sdd_jax.translation.spm',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--data', required=True, help='folder holding train.src and train.tgt')
  parser.add_argument('--vocab_size', type=int, required=True,
                      help='pieces in the joint vocabulary, the 4 specials included')
  parser.add_argument('--model_type', default='unigram', choices=MODEL_TYPES,
                      help='SentencePiece algorithm (default unigram)')
  args = parser.parse_args(argv)
  try:
    model = train_tokenizer(args.data, args.vocab_size, args.model_type)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {model} ({args.vocab_size} pieces, {args.model_type})')
  return 0


if __name__ == '__main__':
  sys.exit(main())
