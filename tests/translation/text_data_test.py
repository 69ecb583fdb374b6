"""text_data: buckets, the training order (epochs, resume, processes), eval batches."""
import itertools
import math

import numpy as np
import pytest

from sdd_jax.errors import DataError
from sdd_jax.translation import spm, text_data, text_files, toy_corpus
from sdd_jax.translation.text_data import Bucket, TranslationLoader
from sdd_jax.translation.tokens import BOS, EOS, PAD

TOKENS = 256


def _random_corpus(n=300, seed=0, max_len=40):
  rng = np.random.default_rng(seed)
  src = [rng.integers(4, 100, rng.integers(0, max_len)).astype(np.int32) for _ in range(n)]
  tgt = [rng.integers(4, 100, rng.integers(0, max_len)).astype(np.int32) for _ in range(n)]
  return src, tgt


SRC, TGT = _random_corpus()
BUCKETS = text_data.make_buckets(SRC, TGT, tokens_per_batch=TOKENS, num_buckets=4, num_devices=8)


def _loader(**kwargs):
  return TranslationLoader(SRC, TGT, **dict(dict(buckets=BUCKETS, seed=3), **kwargs))


def _assert_rows_hold_examples(batch, rows, src, tgt):
  """Each row is its example built independently (or a padding row), PAD only at the end."""
  for i, row in enumerate(rows):
    if row < 0:
      expected = ([EOS], [BOS], [])
    else:
      expected = (list(src[row]) + [EOS], [BOS] + list(tgt[row]), list(tgt[row]) + [EOS])
    for key, want in zip(('src', 'tgt_in', 'tgt_out'), expected):
      got = batch[key][i]
      assert list(got[:len(want)]) == want and not got[len(want):].any(), (key, row)
      assert PAD not in want


def _epoch(loader, epoch):
  return [loader.batch(epoch * loader.steps_per_epoch + k) for k in range(loader.steps_per_epoch)]


def test_buckets_minimise_padding_and_bound_the_tokens():
  lengths = np.maximum([len(s) + 1 for s in SRC], [len(t) + 1 for t in TGT])
  rounded = -(-lengths // 8) * 8
  # Brute force over every choice of 4 boundaries among the rounded lengths (the largest kept).
  values = sorted(set(rounded))
  best = min((sum(min(b for b in bounds if b >= r) for r in rounded), bounds)
             for inner in itertools.combinations(values[:-1], 3)
             for bounds in [inner + (values[-1],)])
  assert tuple(b.src_len for b in BUCKETS) == best[1]
  for bucket in BUCKETS:
    assert bucket.src_len == bucket.tgt_len and bucket.batch_size % 8 == 0
    assert bucket.batch_size * bucket.src_len <= max(TOKENS, 8 * bucket.src_len)
    assert (bucket.batch_size + 8) * bucket.src_len > TOKENS  # the largest such multiple
  buckets = text_data.make_buckets(SRC, TGT, tokens_per_batch=1000, num_buckets=2,
                                   num_devices=4, process_count=3, max_len=20)
  assert [b.src_len for b in buckets][-1] == 20 and all(b.batch_size % 12 == 0 for b in buckets)
  with pytest.raises(DataError, match='no training sentence fits max_len 1'):
    text_data.make_buckets(SRC, TGT, tokens_per_batch=1000, max_len=1)


def test_an_example_goes_to_the_smallest_bucket_that_fits_both_sides():
  src = [np.arange(4, 4 + n) for n in (3, 3, 9, 2, 20)]
  tgt = [np.arange(4, 4 + n) for n in (3, 7, 3, 8, 2)]
  buckets = [Bucket(16, 16, 4), Bucket(4, 8, 4), Bucket(8, 4, 4), Bucket(4, 4, 4)]
  sorted_buckets = [Bucket(4, 4, 4), Bucket(4, 8, 4), Bucket(8, 4, 4), Bucket(16, 16, 4)]
  assert list(text_data.assign_buckets(src, tgt, sorted_buckets)) == [0, 1, 3, 3, -1]
  loader = TranslationLoader(src, tgt, buckets=buckets, seed=0)
  assert loader.shapes == ((4, 4, 4), (4, 4, 8), (4, 16, 16)) and loader.num_dropped == 1


def test_every_sentence_once_per_epoch_and_the_batches_hold_them():
  loader = _loader()
  assert loader.num_dropped == 0
  assignment = text_data.assign_buckets(SRC, TGT, BUCKETS)
  counts = np.bincount(assignment, minlength=len(BUCKETS))
  assert loader.steps_per_epoch == sum(math.ceil(c / b.batch_size)
                                       for c, b in zip(counts, BUCKETS))
  for epoch in (0, 1):
    seen = []
    for k, batch in enumerate(_epoch(loader, epoch)):
      rows = loader.batch_rows(epoch * loader.steps_per_epoch + k)
      _assert_rows_hold_examples(batch, rows, SRC, TGT)
      seen.extend(rows[rows >= 0])
    assert sorted(seen) == list(range(len(SRC)))


def test_shapes_and_tokens_are_what_the_buckets_promise():
  loader = _loader()
  used = np.unique(text_data.assign_buckets(SRC, TGT, BUCKETS))
  assert loader.shapes == tuple((BUCKETS[b].batch_size, BUCKETS[b].src_len, BUCKETS[b].tgt_len)
                                for b in used)
  shapes = set()
  for k, batch in enumerate(_epoch(loader, 0) + _epoch(loader, 1)):
    shape = (len(batch['src']),) + batch['src'].shape[1:] + batch['tgt_out'].shape[1:]
    shapes.add(shape)
    assert batch['tgt_in'].shape == batch['tgt_out'].shape
    assert all(batch[key].dtype == np.int32 for key in ('src', 'tgt_in', 'tgt_out'))
    rows = loader.batch_rows(k)
    expected_tokens = sum(len(TGT[r]) + 1 for r in rows if r >= 0)
    assert loader.num_tokens(batch) == expected_tokens
    assert shape[0] * max(shape[1:]) <= max(TOKENS, 8 * max(shape[1:]))
  assert shapes == set(loader.shapes) and len(shapes) == len(used)


def test_resume_is_exact_and_epochs_differ():
  loader = _loader()
  total = 2 * loader.steps_per_epoch + 3
  straight = list(itertools.islice(loader.iterate(0), total))
  for start in (1, loader.steps_per_epoch, loader.steps_per_epoch + 2):
    resumed = itertools.islice(_loader().iterate(start), total - start)  # a fresh loader
    for a, b in zip(straight[start:], resumed, strict=True):
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])
  spe = loader.steps_per_epoch
  first = [tuple(loader.batch_rows(k)) for k in range(spe)]
  second = [tuple(loader.batch_rows(spe + k)) for k in range(spe)]
  assert first != second and set(map(frozenset, first)) != set(map(frozenset, second))
  other_seed = [tuple(_loader(seed=4).batch_rows(k)) for k in range(spe)]
  assert other_seed != first


def test_two_processes_slices_make_the_single_process_batch():
  single = _loader()
  halves = [_loader(process_index=p, process_count=2) for p in (0, 1)]
  for step in range(single.steps_per_epoch + 2):
    whole = single.batch(step)
    parts = [h.batch(step) for h in halves]
    for key in whole:
      np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])
  with pytest.raises(DataError, match=r'batch size must be a positive multiple of the process '
                     r'count 3; make_buckets\(process_count=...\)'):
    _loader(process_count=3)


def test_sentences_longer_than_the_largest_bucket_are_dropped_from_training():
  buckets = [Bucket(16, 16, 8)]
  loader = TranslationLoader(SRC, TGT, buckets=buckets, seed=0)
  fits = [i for i in range(len(SRC)) if len(SRC[i]) < 16 and len(TGT[i]) < 16]
  assert loader.num_dropped == len(SRC) - len(fits)
  rows = np.concatenate([loader.batch_rows(k) for k in range(loader.steps_per_epoch)])
  assert sorted(rows[rows >= 0]) == fits and loader.steps_per_epoch == math.ceil(len(fits) / 8)


def test_eval_batches_cover_every_example_once_with_masks():
  buckets = [Bucket(16, 16, 8), Bucket(32, 32, 4)]  # some sentences fit neither
  single = text_data.eval_batches(SRC, TGT, buckets=buckets, num_devices=3)
  indices = []
  for batch in single:
    assert len(batch['mask']) % 3 == 0 and batch['mask'].dtype == bool
    assert batch['index'].dtype == np.int32
    rows = np.where(batch['mask'], batch['index'], -1)
    _assert_rows_hold_examples(batch, rows, SRC, TGT)
    indices.extend(batch['index'][batch['mask']])
  assert sorted(indices) == list(range(len(SRC)))
  shapes = {(len(b['src']), b['src'].shape[1], b['tgt_in'].shape[1]) for b in single}
  assert shapes == {(9, 16, 16), (6, 32, 32), (3, 40, 40)}  # batches rounded up to 3 rows
  halves = [text_data.eval_batches(SRC, TGT, buckets=buckets, num_devices=3, process_index=p,
                                   process_count=2) for p in (0, 1)]
  for whole, first, second in zip(text_data.eval_batches(SRC, TGT, buckets=buckets,
                                                         num_devices=6), *halves, strict=True):
    for key in whole:
      np.testing.assert_array_equal(np.concatenate([first[key], second[key]]), whole[key])


def test_toy_corpus_through_sentencepiece(tmp_path):
  folder = toy_corpus.write_toy_corpus(tmp_path, 200, 20, 20, seed=5)
  tokenizer = spm.load_tokenizer(spm.train_tokenizer(folder, 60))
  src_lines, tgt_lines = text_files.read_split(folder, 'train')
  src, tgt = tokenizer.encode(src_lines), tokenizer.encode(tgt_lines)
  loader = TranslationLoader(src, tgt, seed=0, buckets=text_data.make_buckets(
      src, tgt, tokens_per_batch=128, num_devices=8))
  batch = loader.batch(0)
  for row, index in enumerate(loader.batch_rows(0)):
    if index >= 0:
      assert tokenizer.decode(batch['src'][row]) == src_lines[index]
      assert tokenizer.decode(batch['tgt_in'][row]) == tgt_lines[index]
      assert tokenizer.decode(batch['tgt_out'][row]) == tgt_lines[index]


def test_the_overflow_shape_rounds_up_only_within_the_models_positions():
  """A 36-token source (+ EOS = 37) fits no bucket of 16: its shape rounds up to 40, or to the
  model's max_len 38 when given (37 <= 38 < 40), never below the sentence itself."""
  src, tgt = [np.full(36, 5, np.int32), np.full(3, 5, np.int32)], [np.full(2, 6, np.int32)] * 2
  buckets = [Bucket(16, 16, 8)]
  widths = {m: sorted({b['src'].shape[1] for b in text_data.eval_batches(
      src, tgt, buckets=buckets, max_len=m)}) for m in (0, 38, 37, 64)}
  assert widths == {0: [16, 40], 38: [16, 38], 37: [16, 37], 64: [16, 40]}
