"""A synthetic parallel corpus for the offline translation demo and the tests.

The "language pair" is fixed (it does not depend on the seed): a source lexicon of 40
pseudo-words in five classes (4 determiners, 10 adjectives, 14 nouns, 8 verbs, 4 prepositions)
and a target lexicon of 40 other pseudo-words (different letters, so the joint SentencePiece
vocabulary sees two scripts), with a one-to-one word mapping. A source sentence is

  NP verb NP [preposition NP],   NP = [determiner] [adjective] noun,

3 to 11 words. Its translation maps every word and applies two local reorderings, both
deterministic, so a small Transformer can learn the pair exactly:
  * inside a noun phrase the adjective follows the noun ("det adj noun" -> "det' noun' adj'");
  * the verb moves to the end of the sentence (SVO -> SOV, as in German subordinate clauses).

The seed draws the sentences only: `make_toy_corpus(..., seed)` is a pure function of its
arguments, its sentences are distinct across all three splits (so valid and test measure
generalisation, not recall), lower-case ASCII words separated by single spaces.
"""
import pathlib
from typing import Dict, List, Sequence, Tuple

import numpy as np

# Word classes of the source language -> how many words each has.
CLASSES = (('det', 4), ('adj', 10), ('noun', 14), ('verb', 8), ('prep', 4))
_SOURCE_LETTERS = ('bdgklmnprst', 'aeiou')
_TARGET_LETTERS = ('cfhjqvwxyz', 'aeiouy')
_LEXICON_SEED = 1234  # fixed: the language never changes, only the sentences drawn from it
# Probabilities of the optional parts of a sentence.
P_DET, P_ADJ, P_PREP = 0.6, 0.5, 0.5

Lexicon = Dict[str, Tuple[List[str], List[str]]]
Corpus = Dict[str, Tuple[List[str], List[str]]]


def _pseudo_words(rng: np.random.Generator, letters: Tuple[str, str], count: int,
                  syllables: int, taken: set) -> List[str]:
  """`count` distinct words of `syllables` consonant-vowel syllables, none in `taken`."""
  consonants, vowels = letters
  words = []
  while len(words) < count:
    word = ''.join(consonants[rng.integers(len(consonants))] + vowels[rng.integers(len(vowels))]
                   for _ in range(syllables))
    if word not in taken:
      taken.add(word)
      words.append(word)
  return words


def create_lexicon() -> Lexicon:
  """-> {word class: (source words, target words)}; target_words[i] translates source_words[i].
  Determiners and prepositions have one syllable, the other classes two or three."""
  rng = np.random.default_rng(_LEXICON_SEED)
  taken = set()
  lexicon = {}
  for name, count in CLASSES:
    syllables = 1 if name in ('det', 'prep') else 2 + int(name == 'noun')
    lexicon[name] = (_pseudo_words(rng, _SOURCE_LETTERS, count, syllables, taken),
                     _pseudo_words(rng, _TARGET_LETTERS, count, syllables, taken))
  return lexicon


def _noun_phrase(rng: np.random.Generator, lexicon: Lexicon) -> Tuple[List[str], List[str]]:
  """-> (source words, target words) of one noun phrase; the target adjective follows the noun."""
  picks = []
  if rng.random() < P_DET:
    picks.append(('det', rng.integers(len(lexicon['det'][0]))))
  adjective = rng.integers(len(lexicon['adj'][0])) if rng.random() < P_ADJ else None
  noun = rng.integers(len(lexicon['noun'][0]))
  src = [lexicon[name][0][i] for name, i in picks]
  tgt = [lexicon[name][1][i] for name, i in picks]
  if adjective is not None:
    src.append(lexicon['adj'][0][adjective])
  src.append(lexicon['noun'][0][noun])
  tgt.append(lexicon['noun'][1][noun])
  if adjective is not None:
    tgt.append(lexicon['adj'][1][adjective])
  return src, tgt


def _sentence(rng: np.random.Generator, lexicon: Lexicon) -> Tuple[str, str]:
  """-> (source line, target line): NP verb NP [prep NP]; the target verb goes last."""
  subject_src, subject_tgt = _noun_phrase(rng, lexicon)
  verb = rng.integers(len(lexicon['verb'][0]))
  object_src, object_tgt = _noun_phrase(rng, lexicon)
  src = subject_src + [lexicon['verb'][0][verb]] + object_src
  tgt = subject_tgt + object_tgt
  if rng.random() < P_PREP:
    prep = rng.integers(len(lexicon['prep'][0]))
    phrase_src, phrase_tgt = _noun_phrase(rng, lexicon)
    src += [lexicon['prep'][0][prep]] + phrase_src
    tgt += [lexicon['prep'][1][prep]] + phrase_tgt
  tgt.append(lexicon['verb'][1][verb])
  return ' '.join(src), ' '.join(tgt)


def make_toy_corpus(num_train: int, num_valid: int, num_test: int, seed: int) -> Corpus:
  """-> {'train' | 'valid' | 'test': (source lines, target lines)}, the given numbers of
  distinct sentence pairs (no sentence in two splits), a pure function of the arguments."""
  sizes = {'train': num_train, 'valid': num_valid, 'test': num_test}
  if min(sizes.values()) < 0:
    raise ValueError(f'split sizes must be >= 0, got {sizes}')
  lexicon = create_lexicon()
  rng = np.random.default_rng([seed, 16])
  seen, pairs = set(), []
  total = sum(sizes.values())
  while len(pairs) < total:  # ~1e10 distinct sentences: collisions are rare
    pair = _sentence(rng, lexicon)
    if pair[0] not in seen:
      seen.add(pair[0])
      pairs.append(pair)
  corpus, start = {}, 0
  for split, size in sizes.items():
    chunk = pairs[start:start + size]
    corpus[split] = ([src for src, _ in chunk], [tgt for _, tgt in chunk])
    start += size
  return corpus


def write_lines(path, lines: Sequence[str]) -> None:
  """Writes `lines`, each followed by a newline, as UTF-8."""
  pathlib.Path(path).write_text(''.join(line + '\n' for line in lines), encoding='utf-8')


def write_toy_corpus(path, num_train: int = 10_000, num_valid: int = 500, num_test: int = 500,
                     seed: int = 0) -> pathlib.Path:
  """Writes `path/{train,valid,test}.{src,tgt}` of `make_toy_corpus` (creating `path`), the
  layout `text_files.read_split` reads; -> the folder."""
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  for split, (src, tgt) in make_toy_corpus(num_train, num_valid, num_test, seed).items():
    write_lines(path / f'{split}.src', src)
    write_lines(path / f'{split}.tgt', tgt)
  return path
