"""How big each part of the check is: the full run (one H100) and `--smoke` (CPU, seconds).

The full run's time on one H100 is an ESTIMATE, not a measurement (no accelerator was lent
when this was written): about 20 s of start-up; about 25 s to compile each of the 9 step
variants (CE and 8 methods; DML and BYOT more), run 3 at a time, so about 100 s; 10 s of
interleaved timing; 20 s of input pipeline; about 40 s to compile the IWSLT-size Transformer
step and 5 s to time it; the training comparison 3 runs x (about 40 s of compiles + 12 epochs
of 78 steps at batch 128 and 2,000 test images, about 1.5 s an epoch) = about 180 s. Total
about 6.5 minutes; `deadline_s` (450 s) skips what would start after it, with a note, so the
check ends inside 8 minutes even where these estimates are off.
"""
import dataclasses
from typing import Tuple

from sdd_jax import methods as methods_lib


@dataclasses.dataclass(frozen=True)
class Settings:
  model: str = 'resnet18_cifar'
  model_kwargs: Tuple = ()  # (key, value) pairs: the tiny variant in smoke mode
  dtype: str = 'bfloat16'
  batch: int = 256
  classes: int = 100  # CIFAR-100's head: the paper's main task
  variants: Tuple[str, ...] = ('ce',) + tuple(methods_lib.METHODS)
  rounds: int = 5
  steps: int = 10  # per variant per round
  compile_threads: int = 3
  pipeline_steps: int = 40
  pipeline_workers: int = -1  # one per core
  translation: Tuple = ()  # model overrides; () = IWSLT de_en sizes
  translation_batch: Tuple[int, int] = (128, 32)  # sentences x tokens: 4,096 tokens per side
  translation_vocab: int = 10000
  translation_steps: int = 10
  train_epochs: int = 12
  train_batch: int = 128  # the paper's CIFAR batch
  eval_batch: int = 200  # divides the bundle's 2,000 test images
  train_width: int = 64  # ResNet-18's first stage: the pooled feature D = 8 x 64 = 512
  train_workers: int = -1
  deadline_s: float = 450.0


FULL = Settings()
SMOKE = Settings(
    model_kwargs=(('width', 4), ('stage_sizes', (1, 1, 1, 1))), dtype='float32', batch=16,
    classes=10, variants=('ce', 'sd_dropout'), rounds=2, steps=2, compile_threads=1,
    pipeline_steps=3, pipeline_workers=0,
    translation=(('num_encoder_layers', 1), ('num_decoder_layers', 1), ('d_model', 32),
                 ('ffn_dim', 64), ('num_heads', 2), ('max_len', 64)),
    translation_batch=(8, 8), translation_vocab=64, translation_steps=2, train_epochs=1,
    train_batch=16, eval_batch=16, train_width=4, train_workers=0, deadline_s=600.0)
