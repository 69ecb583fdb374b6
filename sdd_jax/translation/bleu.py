"""Corpus BLEU of translations: sacreBLEU on detokenised text, and tokenised BLEU.

`sacre_bleu` is the number to report (the `sacrebleu` package, its default 13a tokenisation
and exponential smoothing, one reference per sentence) with its signature string, which pins
down how it was computed. `tokenized_bleu` is the number fairseq's `--remove-bpe` BLEU
prints (`fairseq.scoring.bleu`): the text is split on whitespace as it is (Moses-tokenised
text gives the usual "tokenised BLEU"), n-grams of order 1..4, clipped counts summed over the
corpus, the geometric mean of the four precisions without smoothing (a zero precision gives
0), and the brevity penalty `exp(1 - ref_len / hyp_len)` when the hypotheses are shorter in
total. It is our own count, tested equal to sacrebleu's `tokenize='none'`,
`smooth_method='none'`.
"""
import collections
import math
from typing import Sequence, Tuple

import sacrebleu

MAX_ORDER = 4


def sacre_bleu(hyps: Sequence[str], refs: Sequence[str]) -> Tuple[float, str]:
  """sacreBLEU corpus BLEU (0..100) of detokenised hypotheses against one reference each.

  Returns:
    `(score, signature)`, e.g. `'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'`.
  """
  _check_lengths(hyps, refs)
  metric = sacrebleu.metrics.BLEU()
  score = metric.corpus_score(list(hyps), [list(refs)])
  return float(score.score), str(metric.get_signature())


def _ngrams(words: Sequence[str], order: int) -> collections.Counter:
  return collections.Counter(tuple(words[i:i + order]) for i in range(len(words) - order + 1))


def tokenized_bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
  """Corpus BLEU (0..100) of whitespace-tokenised text, unsmoothed (see the module docstring).

  Args:
    hyps: one hypothesis per sentence.
    refs: one reference per sentence, same count.
  """
  _check_lengths(hyps, refs)
  matches, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
  hyp_len = ref_len = 0
  for hyp, ref in zip(hyps, refs):
    hyp_words, ref_words = hyp.split(), ref.split()
    hyp_len += len(hyp_words)
    ref_len += len(ref_words)
    for n in range(1, MAX_ORDER + 1):
      hyp_counts, ref_counts = _ngrams(hyp_words, n), _ngrams(ref_words, n)
      matches[n - 1] += sum(min(count, ref_counts[g]) for g, count in hyp_counts.items())
      totals[n - 1] += max(0, len(hyp_words) - n + 1)
  if hyp_len == 0 or min(matches) == 0:
    return 0.0
  log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / MAX_ORDER
  brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
  return 100 * brevity * math.exp(log_precision)


def _check_lengths(hyps: Sequence[str], refs: Sequence[str]) -> None:
  if len(hyps) != len(refs):
    raise ValueError(f'{len(hyps)} hypotheses for {len(refs)} references: one each is needed')
