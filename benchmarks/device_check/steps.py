"""Train steps compiled ahead, then timed in interleaved windows: CE and every method on the
classification step, and the translation step at IWSLT size.

Each variant is lowered and compiled first (`jit(...).lower(...).compile()`, timed; several at
once in threads where `compile_threads` > 1, so one compile time includes waiting for a
thread). Then each round times `steps` steps of every variant in turn, so drift (clocks,
other load) hits every variant alike; the median over rounds is reported. FLOPs per step come
from XLA's cost analysis of the compiled step (`train/throughput.compiled_flops`).
"""
import concurrent.futures
import functools
import time
from typing import Callable, Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import common
from sdd_jax import data as data_lib
from sdd_jax import methods as methods_lib
from sdd_jax import models
from sdd_jax import parallel
from sdd_jax.classification import step as step_lib
from sdd_jax.train import optim
from sdd_jax.train import state as state_lib
from sdd_jax.train import throughput
from sdd_jax.translation import model as translation_model
from sdd_jax.translation import optim as translation_optim
from sdd_jax.translation import step as translation_step
from sdd_jax.translation import trainer as translation_trainer

STEPS_PER_EPOCH = 391  # CIFAR's 50,000 / 128: only the schedules read it


def method_config(variant: str) -> dict:
  """`config.methods` of a variant: 'ce' is none, else the method alone at its defaults."""
  return {} if variant == 'ce' else {variant: methods_lib.defaults(variant)}


def _host_batch(settings, rng) -> Dict[str, np.ndarray]:
  """Every key a method may need (`index`, `second_view`, `pair_images`), uint8 pixels."""
  pixels = rng.integers(0, 256, (settings.batch, 32, 32, 3), np.uint8)
  return {'images': pixels,
          'labels': rng.integers(0, settings.classes, settings.batch).astype(np.int32),
          'index': np.arange(settings.batch, dtype=np.int32),
          'second_view': pixels[:, :, ::-1].copy(), 'pair_images': np.roll(pixels, 1, axis=0)}


def compiled_memory(compiled) -> dict:
  """Bytes of the compiled step's arguments, outputs and temporaries (XLA's memory analysis;
  {} where the backend gives none)."""
  try:
    analysis = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  # backends without it
    return {}
  fields = {'argument_bytes': 'argument_size_in_bytes', 'output_bytes': 'output_size_in_bytes',
            'temp_bytes': 'temp_size_in_bytes', 'alias_bytes': 'alias_size_in_bytes'}
  return {k: int(getattr(analysis, v)) for k, v in fields.items()
          if analysis is not None and hasattr(analysis, v)}


def _timed_compile(fn, *args) -> tuple:
  start = time.time()
  compiled = fn.lower(*args).compile()
  return compiled, time.time() - start


def _build_image_variant(settings, mesh, model, variant: str, batch) -> dict:
  config = common.recipe()
  schedule = optim.make_lr_schedule(config.optim, steps_per_epoch=STEPS_PER_EPOCH)
  tx = optim.make_optimizer(config.optim, schedule)
  methods = methods_lib.create_methods(method_config(variant))
  run = methods_lib.RunInfo(num_examples=STEPS_PER_EPOCH * settings.batch,
                            num_classes=settings.classes, steps_per_epoch=STEPS_PER_EPOCH,
                            num_epochs=config.num_epochs, num_devices=mesh.devices.size)
  state = jax.jit(functools.partial(state_lib.create_train_state, model, tx, methods=methods,
                                    run=run),
                  out_shardings=state_lib.shardings(mesh, methods))(
                      state_lib.init_key(0), np.zeros((1, 32, 32, 3), np.float32))
  normalize_fn = data_lib.make_normalize_fn(common.data_config('cifar100'), settings.dtype)
  step_fn = step_lib.make_train_step(model, tx, methods, seed=0, lr_schedule=schedule,
                                     mesh=mesh, run=run, normalize_fn=normalize_fn)
  compiled, seconds = _timed_compile(step_fn, state, batch)
  return {'state': state, 'step': compiled, 'compile_s': seconds,
          'flops': throughput.compiled_flops(compiled)}


def _interleave(runners: Dict[str, dict], batch_fn: Callable, steps: int, rounds: int) -> dict:
  """Seconds per step of each runner in each round: rounds x (every runner, `steps` steps)."""
  seconds = {name: [] for name in runners}
  for name, runner in runners.items():  # one untimed step each: first-call costs out
    runner['state'], metrics = runner['step'](runner['state'], batch_fn(name))
    jax.block_until_ready(metrics)
  for _ in range(rounds):
    for name, runner in runners.items():
      start = time.time()
      for _ in range(steps):
        runner['state'], metrics = runner['step'](runner['state'], batch_fn(name))
      jax.block_until_ready((runner['state'], metrics))
      seconds[name].append((time.time() - start) / steps)
  return seconds


def _row(runner: dict, step_seconds: list, per_step: float, peak_flops) -> dict:
  median = float(np.median(step_seconds))
  flops = runner['flops']
  row = {'compile_s': runner['compile_s'], 'memory': compiled_memory(runner['step']),
         'step_ms': 1000 * median,
         'step_ms_min': 1000 * min(step_seconds), 'step_ms_max': 1000 * max(step_seconds),
         'per_sec': per_step / median, 'flops_per_step': flops, 'tflops_per_sec': None,
         'mfu': None}
  if flops:
    row['tflops_per_sec'] = flops / median / 1e12
    if peak_flops:
      row['mfu'] = flops / median / peak_flops
  return row


def classification(settings, peak_flops, deadline: float) -> dict:
  """Images/s, step time, compile time and MFU of CE and each method (ResNet-18 CIFAR)."""
  mesh = parallel.create_mesh()
  model = models.get_model(settings.model, num_classes=settings.classes,
                           dtype=jnp.dtype(settings.dtype), **dict(settings.model_kwargs))
  host = _host_batch(settings, np.random.default_rng(0))
  inputs = {}
  for variant in settings.variants:
    needs = methods_lib.batch_needs(methods_lib.create_methods(method_config(variant)))
    keys = {'images', 'labels'} | set(needs)
    inputs[variant] = {k: v for k, v in host.items() if k in keys}
  start = time.time()
  with concurrent.futures.ThreadPoolExecutor(settings.compile_threads) as pool:
    futures = {v: pool.submit(_build_image_variant, settings, mesh, model, v,
                              parallel.to_global(inputs[v], mesh))
               for v in settings.variants}
    runners = {v: f.result() for v, f in futures.items()}
  compile_wall = time.time() - start
  skipped = time.time() > deadline
  seconds = _interleave(runners, lambda v: parallel.to_global(inputs[v], mesh), settings.steps,
                        1 if skipped else settings.rounds)
  rows = {v: _row(runners[v], seconds[v], settings.batch, peak_flops) for v in runners}
  for row in rows.values():
    row['step_time_vs_ce'] = row['step_ms'] / rows['ce']['step_ms']
  return {'model': settings.model, 'dtype': settings.dtype, 'batch': settings.batch,
          'classes': settings.classes, 'rounds': 1 if skipped else settings.rounds,
          'steps_per_round': settings.steps, 'compile_threads': settings.compile_threads,
          'compile_wall_s': compile_wall, 'variants': rows}


def _translation_batch(settings, rng) -> Dict[str, np.ndarray]:
  """Synthetic token ids (no PAD, no BOS/EOS ids: 4..vocab-1), src/tgt of equal length."""
  sentences, length = settings.translation_batch
  ids = lambda: rng.integers(4, settings.translation_vocab, (sentences, length)).astype(np.int32)
  target = ids()
  return {'src': ids(), 'tgt_in': np.roll(target, 1, axis=1), 'tgt_out': target}


def translation(settings, peak_flops) -> dict:
  """Tokens/s (target tokens) of the PS-KD translation step at `configs/iwslt15_pskd.py:de_en`
  sizes (6+6 layers, d_model 512, 10k vocabulary), bf16, on synthetic tokens."""
  from configs import iwslt15_pskd  # pylint: disable=import-outside-toplevel
  config = iwslt15_pskd.get_config('de_en')
  config.model.update(dtype=settings.dtype, **dict(settings.translation))
  mesh = parallel.create_mesh()
  model = translation_model.create_model(config.model, settings.translation_vocab)
  schedule = translation_optim.make_lr_schedule(config.optim)
  tx = translation_optim.make_optimizer(config.optim, schedule)
  batch = _translation_batch(settings, np.random.default_rng(0))
  state = translation_trainer.create_state(model, tx, config, batch['src'][:1],
                                           batch['tgt_in'][:1], mesh)
  epsilon, alpha = translation_trainer.method_settings(config)
  step_fn = translation_step.make_train_step(model, tx, seed=0, lr_schedule=schedule, mesh=mesh,
                                             epsilon=epsilon, pskd_alpha=alpha,
                                             steps_per_epoch=1000, num_epochs=config.num_epochs)
  global_batch = parallel.to_global(batch, mesh)
  compiled, seconds = _timed_compile(step_fn, state, global_batch)
  runner = {'state': state, 'step': compiled, 'compile_s': seconds,
            'flops': throughput.compiled_flops(compiled)}
  step_seconds = _interleave({'ps_kd': runner}, lambda _: global_batch,
                             settings.translation_steps, 3)['ps_kd']
  tokens = int(batch['tgt_out'].size)
  row = _row(runner, step_seconds, tokens, peak_flops)
  sizes = ml_collections.ConfigDict(config.model).to_dict()
  return {'model': {k: sizes[k] for k in ('num_encoder_layers', 'num_decoder_layers', 'd_model',
                                          'ffn_dim', 'num_heads', 'dtype')},
          'vocab_size': settings.translation_vocab, 'method': 'ps_kd (alpha 0.8) + label '
          f'smoothing {epsilon}', 'sentences': batch['src'].shape[0],
          'tokens_per_side': tokens, 'tokens_per_sec': row.pop('per_sec'), **row}
