"""toy_corpus: a fixed language pair, deterministic sentences, the translation rule."""
from sdd_jax.translation import toy_corpus


def _translate(words, lexicon):
  """The rule re-derived word by word: map, move each adjective after its noun, verb last."""
  classes = {src: (name, tgt) for name, (srcs, tgts) in lexicon.items()
             for src, tgt in zip(srcs, tgts)}
  out, verb, adjective = [], None, None
  for word in words:
    name, tgt = classes[word]
    if name == 'verb':
      verb = tgt
    elif name == 'adj':
      adjective = tgt
    else:
      out.append(tgt)
      if name == 'noun' and adjective is not None:
        out.append(adjective)
        adjective = None
  return out + [verb]


def test_lexicon_is_fixed_and_one_to_one():
  lexicon = toy_corpus.create_lexicon()
  assert lexicon == toy_corpus.create_lexicon()
  words = [w for srcs, tgts in lexicon.values() for w in srcs + tgts]
  assert len(words) == len(set(words)) == 80
  assert {name: len(srcs) for name, (srcs, _) in lexicon.items()} == dict(toy_corpus.CLASSES)


def test_a_hand_worked_sentence():
  lex = toy_corpus.create_lexicon()
  det, adj, noun, verb, prep = (lex[c] for c in ('det', 'adj', 'noun', 'verb', 'prep'))
  # "det0 adj1 noun2 verb3 noun4 prep0 det1 noun5" -> "det0 noun2 adj1 noun4 prep0 det1 noun5 verb3"
  src = [det[0][0], adj[0][1], noun[0][2], verb[0][3], noun[0][4], prep[0][0], det[0][1],
         noun[0][5]]
  expected = [det[1][0], noun[1][2], adj[1][1], noun[1][4], prep[1][0], det[1][1], noun[1][5],
              verb[1][3]]
  assert _translate(src, lex) == expected


def test_corpus_is_deterministic_distinct_and_follows_the_rule():
  corpus = toy_corpus.make_toy_corpus(300, 40, 50, seed=3)
  assert corpus == toy_corpus.make_toy_corpus(300, 40, 50, seed=3)
  assert corpus['train'] != toy_corpus.make_toy_corpus(300, 40, 50, seed=4)['train']
  assert [len(corpus[s][0]) for s in ('train', 'valid', 'test')] == [300, 40, 50]
  every = [line for split in corpus.values() for line in split[0]]
  assert len(set(every)) == len(every)  # no sentence in two splits
  lexicon = toy_corpus.create_lexicon()
  lengths = set()
  for src_lines, tgt_lines in corpus.values():
    assert len(src_lines) == len(tgt_lines)
    for src, tgt in zip(src_lines, tgt_lines):
      assert src == ' '.join(src.split()) and tgt == ' '.join(tgt.split())
      assert tgt.split() == _translate(src.split(), lexicon)
      lengths.add(len(src.split()))
  assert min(lengths) == 3 and max(lengths) == 11


def test_write_toy_corpus(tmp_path):
  folder = toy_corpus.write_toy_corpus(tmp_path / 'toy', 20, 3, 4, seed=1)
  corpus = toy_corpus.make_toy_corpus(20, 3, 4, seed=1)
  for split, (src, tgt) in corpus.items():
    assert (folder / f'{split}.src').read_text() == ''.join(s + '\n' for s in src)
    assert (folder / f'{split}.tgt').read_text() == ''.join(t + '\n' for t in tgt)
