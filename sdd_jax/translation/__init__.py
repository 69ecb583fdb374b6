"""Machine translation (issue 16): PS-KD beyond images on a Flax encoder-decoder Transformer.

One module per concept: `tokens` (special ids), `toy_corpus` (the offline demo's synthetic
parallel text), `spm` (the joint SentencePiece vocabulary), `text_files` (the split files and
their contract), `text_data` (length buckets, the training loader, eval batches), `corpus` (a
run's text, tokenizer and batches), `model` (the Transformer), `decode` (greedy and beam search), `bleu` (sacreBLEU and tokenised
BLEU), `evaluation` (decode, score and write a split), `losses` (label-smoothed and PS-KD token
losses), `pskd` (the previous epoch's weights as the teacher), `optim` (fairseq's Adam and
inverse-sqrt schedule), `step` (the jitted train step), `validation` (config checks),
`trainer` (`train_and_evaluate`), `demo` (LS vs PS-KD on the toy corpus). `train.py` reaches
the trainer through `sdd_jax/tasks.py` (`config.task = 'translation'`).
"""
from sdd_jax.translation.bleu import sacre_bleu, tokenized_bleu
from sdd_jax.translation.decode import beam_search, greedy_search, make_translate_fn
from sdd_jax.translation.evaluation import TranslationEvaluator, evaluate_translation
from sdd_jax.translation.losses import (label_smoothed_loss, nll_loss, pskd_loss, pskd_targets,
                                        soft_cross_entropy, token_mask, token_mean)
from sdd_jax.translation.model import Transformer, create_model
from sdd_jax.translation.pskd import alpha_at
from sdd_jax.translation.spm import Tokenizer, load_tokenizer, train_tokenizer
from sdd_jax.translation.text_data import TranslationLoader, eval_batches, make_buckets
from sdd_jax.translation.text_files import read_split
from sdd_jax.translation.tokens import BOS, EOS, PAD, UNK
from sdd_jax.translation.toy_corpus import make_toy_corpus, write_toy_corpus
from sdd_jax.translation.trainer import train_and_evaluate
