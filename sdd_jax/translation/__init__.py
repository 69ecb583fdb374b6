"""Machine translation (issue 16): PS-KD beyond images on a Flax encoder-decoder Transformer.

One module per concept: `tokens` (special ids), `toy_corpus` (the offline demo's synthetic
parallel text), `losses` (label-smoothed and PS-KD token losses), `pskd` (the teacher of the
previous epoch), `optim` (fairseq's Adam and inverse-sqrt schedule), `step` (the jitted train
step), `validation` (config checks), `corpus` (text, tokenizer, loader), `trainer`
(`train_and_evaluate`). `train.py` reaches the trainer through `sdd_jax/tasks.py`
(`config.task = 'translation'`).
"""
from sdd_jax.translation.losses import (label_smoothed_loss, nll_loss, pskd_loss, pskd_targets,
                                        soft_cross_entropy, token_mask, token_mean)
from sdd_jax.translation.pskd import alpha_at
from sdd_jax.translation.tokens import BOS, EOS, PAD, UNK
