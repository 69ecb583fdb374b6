"""The run's corpus: the parallel text (the user's files, or the toy corpus generated into the
workdir), its SentencePiece tokenizer, the training loader and the evaluation batches.

`config.data.source`: 'files' reads `<data.path>/{train,valid,test}.{src,tgt}` and the
tokenizer `data.spm_model` (default `<data.path>/spm.model`, written by `python -m
sdd_jax.translation.spm --data <data.path> --vocab_size N`); 'toy' writes the deterministic toy
corpus (`toy_corpus.py`, `data.toy_*` sizes, seed `data.toy_seed`) and trains its tokenizer
into a cache folder (`data.path`, or by default `<tmp>/sdd_jax_toy_corpus/<digest of those
fields>`), once: both are pure functions of the config, built in a scratch folder and renamed
into place, so concurrent runs and resumed runs read the same bytes. `prepare` checks every
file (and builds the toy corpus) before the workdir is touched; a missing file is one line
that names the command to run. `create_corpus` (also before the workdir is claimed) reads the
files under their contract (`text_files.py`: one line naming the file and line for
non-UTF-8 bytes, an empty file, a blank line, unequal line counts, and a valid or test sentence
longer than the model's positions); training pairs longer than `data.max_len` are dropped and
counted instead (`text_data.TranslationLoader`).
"""
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Dict, List

from sdd_jax.errors import UserError
from sdd_jax.translation import spm
from sdd_jax.translation import text_data
from sdd_jax.translation import text_files
from sdd_jax.translation import toy_corpus

SPLITS = ('train', 'valid', 'test')


class CorpusError(UserError):
  """The parallel text or its tokenizer cannot be found."""


@dataclasses.dataclass
class Corpus:
  tokenizer: object  # spm.Tokenizer
  loader: text_data.TranslationLoader
  eval_batches: Dict[str, List[dict]]  # split -> host-local padded batches (mask, index)
  references: Dict[str, List[str]]  # split -> the target lines (detokenised text)


TOY_FIELDS = ('vocab_size', 'toy_train', 'toy_valid', 'toy_test', 'toy_seed')


def folder(config) -> str:
  """The folder of the split files and (by default) spm.model."""
  if config.data.source == 'files' or config.data.path:
    return config.data.path
  key = json.dumps({k: config.data[k] for k in TOY_FIELDS}, sort_keys=True)
  return os.path.join(tempfile.gettempdir(), 'sdd_jax_toy_corpus',
                      hashlib.sha256(key.encode()).hexdigest()[:16])


def spm_model(config) -> str:
  return config.data.spm_model or os.path.join(folder(config), 'spm.model')


def prepare(config) -> None:
  """Checks the corpus files; for 'toy' first writes the corpus and its tokenizer if missing.
  CorpusError (one line) for a missing split or tokenizer."""
  if config.data.source == 'toy':
    _write_toy(config, folder(config))
  path = folder(config)
  if not path or not os.path.isdir(path):
    raise CorpusError(f'config.data.path {path!r} is not a folder; give the folder holding '
                      '{train,valid,test}.{src,tgt} (--config.data.path=DIR)')
  for split in SPLITS:
    for side in ('src', 'tgt'):
      name = os.path.join(path, f'{split}.{side}')
      if not os.path.isfile(name):
        what = 'is a folder, not a file' if os.path.isdir(name) else 'is missing'
        raise CorpusError(f'{name} {what}; put one sentence per line in '
                          f'{path}/{{train,valid,test}}.{{src,tgt}}')
  model = spm_model(config)
  if os.path.isdir(model):
    raise CorpusError(f'{model} is a folder, not a SentencePiece model; set '
                      f'config.data.spm_model to the .model file')
  if not os.path.isfile(model):
    raise CorpusError(f'{model} is missing; train it with python -m sdd_jax.translation.spm '
                      f'--data {path} --vocab_size {config.data.vocab_size}')


def _write_toy(config, target: str) -> None:
  """The toy corpus and its tokenizer in `target`, unless already there: built in a scratch
  folder beside it and renamed into place (a concurrent run's copy wins; same bytes)."""
  if os.path.isfile(os.path.join(target, 'spm.model')):
    return
  os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
  scratch = tempfile.mkdtemp(prefix='.partial_', dir=os.path.dirname(target) or '.')
  try:
    toy_corpus.write_toy_corpus(scratch, num_train=config.data.toy_train,
                                num_valid=config.data.toy_valid, num_test=config.data.toy_test,
                                seed=config.data.toy_seed)
    spm.train_tokenizer(scratch, config.data.vocab_size,
                        out_prefix=os.path.join(scratch, 'spm'))
    try:
      os.rename(scratch, target)
    except OSError:  # made meanwhile by another run
      if not os.path.isfile(os.path.join(target, 'spm.model')):
        raise
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def create_corpus(config, *, num_devices: int, process_index: int = 0,
                  process_count: int = 1) -> Corpus:
  """Reads the corpus (`prepare` first) and builds the loader and eval batches."""
  path = folder(config)
  tokenizer = spm.load_tokenizer(spm_model(config))
  encoded, references = {}, {}
  for split in SPLITS:
    src_lines, tgt_lines = text_files.read_split(path, split)
    text_files.check_no_blank_line(path, split, src_lines, tgt_lines)
    encoded[split] = (tokenizer.encode(src_lines), tokenizer.encode(tgt_lines))
    references[split] = list(tgt_lines)
  for split in ('valid', 'test'):  # training drops pairs over data.max_len (text_data.py)
    text_files.check_fits_the_model(path, split, encoded[split], config.model.max_len)
  buckets = text_data.make_buckets(
      *encoded['train'], tokens_per_batch=config.data.tokens_per_batch,
      num_buckets=config.data.num_buckets, num_devices=num_devices,
      process_count=process_count, max_len=config.data.max_len)
  loader = text_data.TranslationLoader(*encoded['train'], buckets=buckets, seed=config.seed,
                                       process_index=process_index,
                                       process_count=process_count)
  eval_batches = {split: text_data.eval_batches(*encoded[split], buckets=buckets,
                                                num_devices=num_devices,
                                                process_index=process_index,
                                                process_count=process_count,
                                                max_len=config.model.max_len)
                  for split in ('valid', 'test')}
  return Corpus(tokenizer, loader, eval_batches, references)

