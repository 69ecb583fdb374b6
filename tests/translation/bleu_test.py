"""BLEU: our tokenised count against a hand-worked example and sacrebleu; sacreBLEU wrapper."""
import math

import pytest
import sacrebleu

from sdd_jax.translation import bleu

HYPS = ['the cat sat on the mat', 'i like green tea']
REFS = ['the cat is on the mat', 'i like green tea very much']

FIXED_HYPS = ['das ist ein kleiner Test , oder ?', 'the the the the', 'we go home now .',
              'a b c d e f g', 'und noch ein Satz mit &quot; Zeichen']
FIXED_REFS = ['das ist ein Test , oder nicht ?', 'the cat is here', 'we are going home now .',
              'a b c d e f g h', 'und noch ein Satz mit &quot; Zeichen !']


def test_tokenized_bleu_by_hand():
  # Matches / totals over both sentences, orders 1..4:
  #   1-grams: (5 + 4) / (6 + 4); 2-grams: (3 + 3) / (5 + 3); 3-grams: (1 + 2) / (4 + 2);
  #   4-grams: (0 + 1) / (3 + 1). Lengths: hypotheses 10, references 12 -> BP exp(1 - 1.2).
  expected = 100 * math.exp(1 - 12 / 10) * (9 / 10 * 6 / 8 * 3 / 6 * 1 / 4) ** 0.25
  assert bleu.tokenized_bleu(HYPS, REFS) == pytest.approx(expected, rel=1e-12)
  assert expected == pytest.approx(44.126, abs=1e-3)


def test_tokenized_bleu_equals_sacrebleu_without_tokenisation():
  for smooth in ('none', 'exp'):  # every precision is non-zero here: smoothing does nothing
    reference = sacrebleu.metrics.BLEU(tokenize='none', smooth_method=smooth)
    expected = reference.corpus_score(FIXED_HYPS, [FIXED_REFS]).score
    assert bleu.tokenized_bleu(FIXED_HYPS, FIXED_REFS) == pytest.approx(expected, rel=1e-9)
  # Longer hypotheses: no brevity penalty.
  longer = [h + ' extra words' for h in FIXED_HYPS]
  expected = sacrebleu.metrics.BLEU(tokenize='none').corpus_score(longer, [FIXED_REFS]).score
  assert bleu.tokenized_bleu(longer, FIXED_REFS) == pytest.approx(expected, rel=1e-9)


def test_a_zero_precision_gives_zero_as_unsmoothed_bleu():
  hyps, refs = ['the cat sat on the mat'], ['the cat is on the mat']  # no 4-gram matches
  reference = sacrebleu.metrics.BLEU(tokenize='none', smooth_method='none')
  assert reference.corpus_score(hyps, [refs]).score == 0
  assert bleu.tokenized_bleu(hyps, refs) == 0
  assert bleu.tokenized_bleu([''], ['a b c d']) == 0


def test_sacre_bleu_scores_detokenised_text_and_returns_its_signature():
  score, signature = bleu.sacre_bleu(FIXED_HYPS, FIXED_REFS)
  assert score == pytest.approx(sacrebleu.corpus_bleu(FIXED_HYPS, [FIXED_REFS]).score)
  assert 'nrefs:1' in signature and 'tok:13a' in signature
  assert f'version:{sacrebleu.__version__}' in signature
  # 13a splits punctuation itself: detokenised text scores as its tokenised form would.
  assert bleu.sacre_bleu(['Hello, world! How are you?'],
                         ['Hello , world ! How are you ?'])[0] == pytest.approx(100)


def test_mismatched_counts_are_refused():
  with pytest.raises(ValueError, match='2 hypotheses for 1 references'):
    bleu.tokenized_bleu(['a', 'b'], ['a'])
