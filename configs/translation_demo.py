r"""Offline translation demo: label smoothing and PS-KD on the toy parallel corpus
(`sdd_jax/translation/toy_corpus.py`: a fixed 40-word lexicon pair, adjective after the noun and
verb last in the target), a small Transformer, CPU-sized.

Both arms and their BLEU table, over seeds:
  python -m sdd_jax.translation.demo --workdir /tmp/translation_demo --seeds 3
One arm at a time (the corpus and its SentencePiece model are generated once into a cache
folder, `<tmp>/sdd_jax_toy_corpus/<digest of the data fields>`, or `--config.data.path=DIR`):
  python train.py --config configs/translation_demo.py --workdir /tmp/td/pskd_s0      # PS-KD
  python train.py --config configs/translation_demo.py:ls --workdir /tmp/td/ls_s0     # baseline

The setting: fairseq's recipe (label smoothing 0.1, Adam (0.9, 0.98), inverse-sqrt schedule,
weight decay 1e-4, post-norm Transformer) scaled down to a job for 2 CPU cores: 2+2 layers,
d_model 64, FFN 128, 4 heads, dropout 0.1, 4,000 training pairs, 1,024 tokens per batch, lr 2e-3
after 100 warm-up updates (the IWSLT 5e-4 / 4k would not leave warm-up in a demo), 6 epochs,
greedy decoding (beam 1) to keep evaluation short. PS-KD stacked on label smoothing with
alpha_T = 0.8, as configs/iwslt15_pskd.py. Nothing is tuned for PS-KD.

Measured: `python -m sdd_jax.translation.demo --workdir DIR --seeds 3 --time_steps 60` on 2 CPU
cores shared with other jobs (seeds 0, 1, 2; mean ± sample std; BLEU on 200 valid / 200 test
sentences, greedy):
  | method | valid BLEU   | test BLEU    | test BLEU (tok) | test NLL    |
  | LS     | 85.90 ± 0.78 | 88.76 ± 0.66 | 88.76 ± 0.66    | 0.10 ± 0.01 |
  | PS-KD  | 57.18 ± 2.35 | 60.42 ± 1.82 | 60.42 ± 1.82    | 0.20 ± 0.01 |
Each run took 115 to 165 s of wall time on that loaded machine (train step compiled for 3
batch shapes, the 3 buckets); on the same 2 cores otherwise idle, `--seeds 1` (both arms,
seed 0: LS 88.64, PS-KD 58.45 test BLEU) took 89 s in all, about 45 s a run. In 6 epochs PS-KD trails LS by far: its teacher is the model of
one epoch before, still poor this early, and alpha_t reaches 0.8 by the last epoch, so most of
the target mass is a weak model's prediction. With 20 epochs (`python train.py --config
configs/translation_demo.py:seed=S --config.num_epochs=20`, and `:ls,seed=S`, S = 0, 1, 2; 105
to 210 s each) the BLEU gap nearly closes and PS-KD's test NLL is half LS's:
  | method | valid BLEU   | test BLEU    | test NLL    |
  | LS     | 99.14 ± 0.32 | 99.28 ± 0.29 | 0.06 ± 0.00 |
  | PS-KD  | 97.49 ± 1.54 | 97.45 ± 0.52 | 0.03 ± 0.00 |
Step time, PS-KD / LS, interleaved in one process (`demo.step_time_ratio`): 1.04 for this
model (60 steps, 114 vs 110 ms: per-step overhead hides the teacher's forward pass); 1.19 for
the IWSLT-size model (6+6 layers, d_model 512) on the toy corpus at 4,096 tokens per batch
(12 steps, 6.81 vs 5.74 s on the 2 CPU cores).
"""
from configs import common


def get_config(arg=None):
  config = common.translation_recipe('toy_src', 'toy_tgt')
  config.model.update(num_encoder_layers=2, num_decoder_layers=2, d_model=64, ffn_dim=128,
                      num_heads=4, dropout=0.1, max_len=64)
  config.data.update(source='toy', path='', vocab_size=100, tokens_per_batch=1024,
                     num_buckets=3, max_len=40, toy_train=4000, toy_valid=200, toy_test=200)
  config.num_epochs = 6
  config.optim.update(lr=2e-3, warmup_steps=100)
  config.evals.update(beam_size=1, max_len_a=1.2, max_len_b=4)
  config.checkpoint_every_epochs = 5
  config.log_every_steps = 50
  _, flags = common.parse_arg(arg)
  if 'ls' not in flags:
    config.methods.ps_kd = {'alpha': 0.8}
  return common.apply_arg(config, arg, known_flags=('ls',), smoke_fn=common.translation_smoke)
