"""What a run counts per second (`Unit`: images, tokens), FLOPs per step from XLA's cost
analysis, achieved FLOP/s, and MFU where the peak is known."""
import dataclasses
from typing import Mapping, Optional

import jax

# Peak dense bfloat16 FLOP/s per device (vendor figures); MFU is reported only for these.
PEAK_FLOPS = {
    'TPU v4': 275e12,
    'TPU v5 lite': 197e12,
    'TPU v5e': 197e12,
    'TPU v5p': 459e12,
    'TPU v6 lite': 918e12,
    'TPU v6e': 918e12,
    'NVIDIA A100-SXM4-40GB': 312e12,
    'NVIDIA A100-SXM4-80GB': 312e12,
    'NVIDIA H100 80GB HBM3': 989e12,
    'NVIDIA H200': 989e12,
}


@dataclasses.dataclass(frozen=True)
class Unit:
  """What a task's throughput counts, logged as `train/<name>_per_sec`: per step either a fixed
  `per_step` count (images: the global batch) or the mean of the step metric `metric` over the
  log window (tokens: `train/tokens`, which varies from batch to batch)."""
  name: str
  per_step: float = 0.0
  metric: str = ''

  @property
  def key(self) -> str:
    return f'train/{self.name}_per_sec'

  def per_sec(self, steps_per_sec: float, means: Mapping[str, float]) -> float:
    """Units per second at `steps_per_sec`, `means` the window's mean step metrics."""
    return steps_per_sec * (means.get(self.metric, 0.0) if self.metric else self.per_step)


def compiled_flops(compiled) -> Optional[float]:
  """FLOPs of one call of a compiled (SPMD-partitioned) executable, summed over the devices
  of its mesh; None where the backend gives no estimate."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  if not analysis or 'flops' not in analysis:
    return None
  return float(analysis['flops']) * jax.device_count()


def peak_flops(devices=None) -> Optional[float]:
  """Total peak FLOP/s of `devices` (default: all), None for unknown kinds (e.g. CPUs)."""
  devices = jax.devices() if devices is None else devices
  peak = PEAK_FLOPS.get(devices[0].device_kind)
  return None if peak is None else peak * len(devices)


def throughput_metrics(flops_per_step: Optional[float], steps_per_sec: float) -> dict:
  """{'train/flops_per_step', 'train/flops_per_sec', 'train/mfu'} as far as they are known."""
  if flops_per_step is None:
    return {}
  metrics = {'train/flops_per_step': flops_per_step,
             'train/flops_per_sec': flops_per_step * steps_per_sec}
  peak = peak_flops()
  if peak:
    metrics['train/mfu'] = metrics['train/flops_per_sec'] / peak
  return metrics
