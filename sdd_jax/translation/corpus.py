"""The run's corpus: the parallel text (the user's files, or the toy corpus generated into the
workdir), its SentencePiece tokenizer, the training loader and the evaluation batches.

`config.data.source`: 'files' reads `<data.path>/{train,valid,test}.{src,tgt}` and the
tokenizer `data.spm_model` (default `<data.path>/spm.model`, written by `python -m
sdd_jax.translation.spm --data <data.path> --vocab_size N`); 'toy' writes the deterministic toy
corpus (`toy_corpus.py`, `data.toy_*` sizes, seed `data.toy_seed`) and trains its tokenizer
into `<workdir>/corpus/` on first use (both are pure functions of the config, so a resumed run
rebuilds the same ones). Opening checks every file before the workdir is touched
(`check`); a missing one is one line that names the command to run.
"""
import dataclasses
import os
from typing import Dict, List

from sdd_jax.errors import UserError
from sdd_jax.translation import spm
from sdd_jax.translation import text_data
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


def _folder(config, workdir: str) -> str:
  return config.data.path if config.data.source == 'files' else os.path.join(workdir, 'corpus')


def spm_model(config, workdir: str) -> str:
  return config.data.spm_model or os.path.join(_folder(config, workdir), 'spm.model')


def check(config) -> None:
  """CorpusError (one line) when `data.source == 'files'` and a split or the tokenizer is
  missing; reads nothing else."""
  if config.data.source != 'files':
    return
  path = config.data.path
  if not path or not os.path.isdir(path):
    raise CorpusError(f'config.data.path {path!r} is not a folder; give the folder holding '
                      '{train,valid,test}.{src,tgt} (--config.data.path=DIR)')
  for split in SPLITS:
    for side in ('src', 'tgt'):
      name = os.path.join(path, f'{split}.{side}')
      if not os.path.isfile(name):
        raise CorpusError(f'{name} is missing; put one sentence per line in '
                          f'{path}/{{train,valid,test}}.{{src,tgt}}')
  model = spm_model(config, '')
  if not os.path.isfile(model):
    raise CorpusError(f'{model} is missing; train it with python -m sdd_jax.translation.spm '
                      f'--data {path} --vocab_size {config.data.vocab_size}')


def _write_toy(config, folder: str) -> None:
  """The toy corpus and its tokenizer in `folder`, unless already there."""
  if os.path.isfile(os.path.join(folder, 'spm.model')):
    return
  toy_corpus.write_toy_corpus(folder, num_train=config.data.toy_train,
                              num_valid=config.data.toy_valid, num_test=config.data.toy_test,
                              seed=config.data.toy_seed)
  spm.train_tokenizer(folder, config.data.vocab_size)


def create_corpus(config, workdir: str, *, num_devices: int, process_index: int = 0,
                  process_count: int = 1) -> Corpus:
  """Reads (or for 'toy' first writes) the corpus and builds the loader and eval batches."""
  folder = _folder(config, workdir)
  if config.data.source == 'toy':
    _write_toy(config, folder)
  tokenizer = spm.load_tokenizer(spm_model(config, workdir))
  encoded, references = {}, {}
  for split in SPLITS:
    src_lines, tgt_lines = text_data.read_split(folder, split)
    encoded[split] = (tokenizer.encode(src_lines), tokenizer.encode(tgt_lines))
    references[split] = list(tgt_lines)
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
                                                process_count=process_count)
                  for split in ('valid', 'test')}
  return Corpus(tokenizer, loader, eval_batches, references)
