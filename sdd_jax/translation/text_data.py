"""Parallel text in batches: length buckets, training batches and evaluation batches.

A data folder holds `{train,valid,test}.{src,tgt}`, one sentence per line, line i of `.src`
translated by line i of `.tgt` (read by `text_files.read_split`); spm.py turns lines into ids of
the joint vocabulary (no BOS/EOS). Batches are int32 NumPy arrays on the host (tokens.py's ids):

  src     [B, S]  source ids + EOS, right-padded with PAD
  tgt_in  [B, T]  BOS + target ids, padded (the decoder's input, teacher forcing)
  tgt_out [B, T]  target ids + EOS, padded; a position counts iff tgt_out != PAD

Bucketing (`make_buckets`). Each example needs S >= len(src) + 1 and T >= len(tgt) + 1 and goes
to the first (smallest) bucket that fits both sides. The buckets are square (S = T = L, L a
multiple of `length_multiple`); their L are the `num_buckets` boundaries that minimise the padded
slots of an epoch, sum over examples of their bucket's L (exact dynamic programme over the
distinct rounded lengths). A bucket's batch size is the largest multiple of
m = lcm(num_devices, process_count) with batch * L <= tokens_per_batch (at least m), so a batch
holds at most max(tokens_per_batch, m * L) padded slots per side (fairseq's `--max-tokens`
counts the same padded slots). The jitted train step therefore compiles one program per
non-empty bucket: `len(TranslationLoader.shapes)` <= num_buckets shapes. Sentences longer than
the largest bucket (`max_len`, as fairseq's max positions) are dropped from training, counted
and logged; evaluation never drops one (`eval_batches` adds one overflow shape for them).

Training order (`TranslationLoader`), a pure function of (seed, step) as the image loader's:
epoch = step // steps_per_epoch; a NumPy Generator seeded with (seed, epoch) shuffles each
bucket's examples, cuts them into full batches, pads the bucket's last partial batch with
padding rows, then shuffles the order of all the epoch's batches. Padding rows (rather than
dropping the remainder) keep every training sentence in every epoch, exactly once; a padding
row is an empty sentence pair whose targets are all PAD: src = [EOS, PAD, ...], tgt_in =
[BOS, PAD, ...], tgt_out = [PAD, ...], so it adds nothing to the loss or the token count, and no
attention row is fully masked. steps_per_epoch = sum over buckets of ceil(n_b / batch_b), the
same every epoch. Process p of P reads rows [p * B / P, (p + 1) * B / P) of each global batch.
"""
import math
from typing import Dict, Iterator, List, NamedTuple, Sequence, Tuple

from absl import logging
import numpy as np

from sdd_jax.errors import DataError
from sdd_jax.translation.tokens import BOS, EOS, PAD

Batch = Dict[str, np.ndarray]
SPLITS = ('train', 'valid', 'test')


class Bucket(NamedTuple):
  """One batch shape: src [batch_size, src_len], tgt_in / tgt_out [batch_size, tgt_len]."""
  src_len: int
  tgt_len: int
  batch_size: int


def _lengths(ids: Sequence[np.ndarray]) -> np.ndarray:
  """int64 [N]: len(ids[i]) + 1 (the EOS of src or tgt_out, the BOS of tgt_in)."""
  return np.fromiter((len(x) + 1 for x in ids), np.int64, len(ids))


def _check_parallel(src_ids, tgt_ids) -> None:
  if len(src_ids) != len(tgt_ids):
    raise ValueError(f'{len(src_ids)} source sentences but {len(tgt_ids)} target sentences')


def _best_boundaries(values: np.ndarray, counts: np.ndarray, num_buckets: int) -> List[int]:
  """Sorted distinct `values` with `counts` examples each -> at most num_buckets of them
  (the largest always) minimising sum over examples of the first boundary >= its value."""
  m = len(values)
  k = min(num_buckets, m)
  cum = np.concatenate([[0], np.cumsum(counts)])
  # cost[j][i] of the best i + 1 buckets covering values[:j + 1], the last ending at j.
  cost = np.full((k, m), np.inf)
  choice = np.zeros((k, m), np.int64)
  cost[0] = values * cum[1:]
  for i in range(1, k):
    for j in range(i, m):
      # The last bucket covers values[s..j] (s >= i), the first i buckets values[:s].
      s = np.arange(i, j + 1)
      total = cost[i - 1][s - 1] + values[j] * (cum[j + 1] - cum[s])
      best = int(np.argmin(total))
      cost[i][j], choice[i][j] = total[best], s[best]
  boundaries, j = [], m - 1
  for i in range(k - 1, -1, -1):
    boundaries.append(int(values[j]))
    j = choice[i][j] - 1
  return sorted(boundaries)


def make_buckets(src_ids: Sequence[np.ndarray], tgt_ids: Sequence[np.ndarray], *,
                 tokens_per_batch: int, num_buckets: int = 5, num_devices: int = 1,
                 process_count: int = 1, max_len: int = 0,
                 length_multiple: int = 8) -> Tuple[Bucket, ...]:
  """The training buckets of a split (see the module docstring), shortest first.

  Args:
    src_ids, tgt_ids: the training split's ids, one int array per sentence (no BOS/EOS).
    tokens_per_batch: padded slots per side of a batch, batch_size * L (fairseq --max-tokens).
    num_buckets: the most shapes the train step compiles (fewer if the data has fewer lengths).
    num_devices, process_count: batch sizes are multiples of lcm(num_devices, process_count).
    max_len: the largest L (fairseq's max positions, counting EOS/BOS); longer sentences are
      left out of every bucket. 0: the longest sentence's rounded length.
    length_multiple: every L is a multiple of it (or max_len itself).

  Returns:
    Buckets (L, L, batch_size), L increasing; only lengths some example needs.
  """
  _check_parallel(src_ids, tgt_ids)
  if tokens_per_batch <= 0 or num_buckets <= 0 or length_multiple <= 0 or max_len < 0:
    raise DataError(f'tokens_per_batch ({tokens_per_batch}), num_buckets ({num_buckets}) and '
                    f'length_multiple ({length_multiple}) must be positive, max_len ({max_len}) '
                    f'>= 0')
  lengths = np.maximum(_lengths(src_ids), _lengths(tgt_ids))
  if not len(lengths):
    raise DataError('the training split has no sentence pair; put the sentences in its files')
  shortest = int(lengths.min())
  if max_len:
    lengths = lengths[lengths <= max_len]
  if not len(lengths):
    raise DataError(f'no training sentence fits max_len {max_len} (EOS included; the shortest '
                    f'pair needs {shortest}); raise config.data.max_len (below model.max_len) '
                    f'or shorten the training sentences')
  rounded = -(-lengths // length_multiple) * length_multiple
  if max_len:
    rounded = np.minimum(rounded, max_len)
  values, counts = np.unique(rounded, return_counts=True)
  multiple = math.lcm(max(1, num_devices), max(1, process_count))
  buckets = []
  for length in _best_boundaries(values, counts, num_buckets):
    batch = max(multiple, tokens_per_batch // length // multiple * multiple)
    buckets.append(Bucket(length, length, batch))
  return tuple(buckets)


def assign_buckets(src_ids, tgt_ids, buckets: Sequence[Bucket]) -> np.ndarray:
  """int64 [N]: the index in `buckets` of the first bucket that fits both sides of each
  example (len + 1 <= the bucket's length), -1 where none does."""
  _check_parallel(src_ids, tgt_ids)
  src_len, tgt_len = _lengths(src_ids), _lengths(tgt_ids)
  assignment = np.full(len(src_len), -1, np.int64)
  for b in reversed(range(len(buckets))):  # the first fitting bucket wins
    fits = (src_len <= buckets[b].src_len) & (tgt_len <= buckets[b].tgt_len)
    assignment[fits] = b
  return assignment


def _sorted(buckets: Sequence[Bucket]) -> List[Bucket]:
  if not buckets:
    raise DataError('no buckets: make_buckets gives them from the training split')
  return sorted((Bucket(*b) for b in buckets),
                key=lambda b: (max(b.src_len, b.tgt_len), b.src_len, b.tgt_len))


def pack_batch(src_ids, tgt_ids, rows: np.ndarray, src_len: int, tgt_len: int) -> Batch:
  """Rows (indices into src_ids / tgt_ids, -1 for a padding row) -> {'src' [n, src_len],
  'tgt_in' [n, tgt_len], 'tgt_out' [n, tgt_len]} int32 (a padding row: src [EOS, PAD, ...],
  tgt_in [BOS, PAD, ...], tgt_out all PAD)."""
  n = len(rows)
  src = np.full((n, src_len), PAD, np.int32)
  tgt_in = np.full((n, tgt_len), PAD, np.int32)
  tgt_out = np.full((n, tgt_len), PAD, np.int32)
  src[:, 0], tgt_in[:, 0] = EOS, BOS
  for i, row in enumerate(rows):
    if row < 0:
      continue
    s, t = src_ids[row], tgt_ids[row]
    src[i, :len(s)] = s
    src[i, len(s)] = EOS
    tgt_in[i, 1:len(t) + 1] = t
    tgt_out[i, :len(t)] = t
    tgt_out[i, len(t)] = EOS
  return {'src': src, 'tgt_in': tgt_in, 'tgt_out': tgt_out}


def num_tokens(batch: Batch) -> int:
  """The target tokens of a batch that count in the loss: tgt_out != PAD (EOS included)."""
  return int(np.sum(batch['tgt_out'] != PAD))


class TranslationLoader:
  """Host-local training batches of process `process_index` of `process_count`.

  `batch(step)` -> {'src' [b, S], 'tgt_in' [b, T], 'tgt_out' [b, T]} int32, b = B / P, with
  (B, S, T) the shape of the step's bucket; see the module docstring for the order.

  Attributes:
    steps_per_epoch: sum over non-empty buckets of ceil(examples / batch_size).
    shapes: the distinct global batch shapes (B, S, T), one per non-empty bucket: the number
      of programs the train step compiles.
    num_dropped: training sentences that fit no bucket (left out of every epoch).
  """

  def __init__(self, src_ids: Sequence[np.ndarray], tgt_ids: Sequence[np.ndarray], *,
               buckets: Sequence[Bucket], seed: int, process_index: int = 0,
               process_count: int = 1):
    buckets = _sorted(buckets)
    if seed < 0:
      raise DataError(f'the data seed must be >= 0, got {seed}')
    if not 0 <= process_index < process_count:
      raise DataError(f'process index {process_index} is not in [0, {process_count})')
    for bucket in buckets:
      if bucket.batch_size <= 0 or bucket.batch_size % process_count:
        raise DataError(f'bucket {tuple(bucket)}: its batch size must be a positive multiple '
                        f'of the process count {process_count}; make_buckets(process_count=...)')
    assignment = assign_buckets(src_ids, tgt_ids, buckets)
    self.num_dropped = int(np.sum(assignment < 0))
    if self.num_dropped:
      logging.warning('%d of %d training sentences are longer than the largest bucket %s and '
                      'left out', self.num_dropped, len(assignment), tuple(buckets[-1]))
    members = [np.flatnonzero(assignment == b) for b in range(len(buckets))]
    self._buckets = [(bucket, rows) for bucket, rows in zip(buckets, members) if len(rows)]
    if not self._buckets:
      raise DataError('no training sentence fits the buckets; check the data and max_len')
    self.steps_per_epoch = sum(-(-len(rows) // bucket.batch_size)
                               for bucket, rows in self._buckets)
    self.shapes = tuple((b.batch_size, b.src_len, b.tgt_len) for b, _ in self._buckets)
    self.src_ids, self.tgt_ids, self.seed = src_ids, tgt_ids, seed
    self.process_index, self.process_count = process_index, process_count
    self._plans = {}

  def epoch_plan(self, epoch: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    """-> (bucket [steps_per_epoch] int64: the index into `self.shapes` of each step's batch,
    rows: per step the int64 [B] example indices of the global batch, -1 = padding row)."""
    if epoch not in self._plans:
      rng = np.random.default_rng([self.seed, epoch])
      bucket_of, rows = [], []
      for b, (bucket, members) in enumerate(self._buckets):
        order = members[rng.permutation(len(members))]
        count = -(-len(order) // bucket.batch_size)
        padded = np.full(count * bucket.batch_size, -1, np.int64)
        padded[:len(order)] = order
        padded.flags.writeable = False  # the cached plan is shared with batch_rows' callers
        rows.extend(padded.reshape(count, bucket.batch_size))
        bucket_of.extend([b] * count)
      order = rng.permutation(self.steps_per_epoch)
      if len(self._plans) >= 2:  # keep two epochs, as the image loader's permutation cache
        self._plans.pop(min(self._plans))
      self._plans[epoch] = (np.asarray(bucket_of, np.int64)[order], [rows[i] for i in order])
    return self._plans[epoch]

  def batch_rows(self, step: int) -> np.ndarray:
    """int64 [B]: the example indices of the global batch of `step` (-1 = padding row)."""
    epoch, k = divmod(step, self.steps_per_epoch)
    return self.epoch_plan(epoch)[1][k]

  def batch(self, step: int) -> Batch:
    epoch, k = divmod(step, self.steps_per_epoch)
    bucket_of, rows = self.epoch_plan(epoch)
    bucket = self._buckets[bucket_of[k]][0]
    local = bucket.batch_size // self.process_count
    mine = rows[k][self.process_index * local:(self.process_index + 1) * local]
    return pack_batch(self.src_ids, self.tgt_ids, mine, bucket.src_len, bucket.tgt_len)

  def iterate(self, start_step: int = 0) -> Iterator[Batch]:
    """batch(start_step), batch(start_step + 1), ... without end."""
    step = start_step
    while True:
      yield self.batch(step)
      step += 1

  num_tokens = staticmethod(num_tokens)


def eval_batches(src_ids: Sequence[np.ndarray], tgt_ids: Sequence[np.ndarray], *,
                 buckets: Sequence[Bucket], num_devices: int = 1, process_index: int = 0,
                 process_count: int = 1, length_multiple: int = 8,
                 max_len: int = 0) -> List[Batch]:
  """Every example of a split exactly once, in padded and masked batches of a few shapes.

  Each example goes to the first bucket that fits it (the training buckets, their batch sizes
  rounded up to a multiple of m = lcm(num_devices, process_count)); examples longer than every
  bucket go to one more bucket, (S, T) = the longest such source and target rounded up to
  `length_multiple` (but at most `max_len`, the model's positions, when it is given), batch
  size the largest multiple of m (at least m) within the largest bucket's padded slots. Within a bucket, examples keep their line order; the last batch of a
  bucket is filled with padding rows (as in training, mask False, index 0).

  Returns:
    Host-local dicts of process `process_index`: 'src' [b, S], 'tgt_in' [b, T], 'tgt_out'
    [b, T] int32, 'mask' [b] bool (False: a padding row), 'index' [b] int32 (the line number
    in the split), b = B / process_count; process p holds rows [p * b, (p + 1) * b).
  """
  buckets = _sorted(buckets)
  if not 0 <= process_index < process_count:
    raise DataError(f'process index {process_index} is not in [0, {process_count})')
  multiple = math.lcm(max(1, num_devices), max(1, process_count))
  assignment = assign_buckets(src_ids, tgt_ids, buckets)
  shapes = [Bucket(b.src_len, b.tgt_len, -(-b.batch_size // multiple) * multiple)
            for b in buckets]
  overflow = np.flatnonzero(assignment < 0)
  if len(overflow):
    src_len = src_longest = int(_lengths([src_ids[i] for i in overflow]).max())
    tgt_len = tgt_longest = int(_lengths([tgt_ids[i] for i in overflow]).max())
    src_len, tgt_len = (-(-n // length_multiple) * length_multiple for n in (src_len, tgt_len))
    if max_len:  # the rounding stays within the model's positions
      src_len, tgt_len = (min(padded, max(longest, max_len)) for padded, longest in
                          ((src_len, src_longest), (tgt_len, tgt_longest)))
    slots = max(b.batch_size * max(b.src_len, b.tgt_len) for b in buckets)
    batch = max(multiple, slots // max(src_len, tgt_len) // multiple * multiple)
    assignment[overflow] = len(shapes)
    shapes.append(Bucket(src_len, tgt_len, batch))
  batches = []
  for b, shape in enumerate(shapes):
    members = np.flatnonzero(assignment == b)
    local = shape.batch_size // process_count
    for start in range(0, len(members), shape.batch_size):
      rows = np.full(shape.batch_size, -1, np.int64)
      chunk = members[start:start + shape.batch_size]
      rows[:len(chunk)] = chunk
      mine = rows[process_index * local:(process_index + 1) * local]
      batch = pack_batch(src_ids, tgt_ids, mine, shape.src_len, shape.tgt_len)
      batch['mask'] = mine >= 0
      batch['index'] = np.maximum(mine, 0).astype(np.int32)
      batches.append(batch)
  return batches
