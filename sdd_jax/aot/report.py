"""The compile check's report: a roofline ESTIMATE from the compiled per-chip figures and the
chip's published figures (`chips.py`), written as `report.json` and `report.md`.

The estimate, per chip and step: compute = FLOPs / bf16 peak; memory = bytes accessed / HBM
bandwidth; collectives = sum over the collective ops of their bytes times the ring factor
(all-reduce 2(n-1)/n, all-gather and reduce-scatter (n-1)/n, others 1) over the ICI bandwidth
per chip. Step time = max(compute, memory) + collectives (no overlap of communication with
compute assumed; latency of each small collective ignored). MFU = compute / step time. These
are estimates from a compiler's cost model and published peaks, not measurements.
"""
import json
import os
from typing import Dict

HEADROOM = 0.9  # fits: total per-chip bytes <= 90% of HBM (the rest for the runtime, an assumption)
_RING = {'all-reduce': 2.0, 'all-gather': 1.0, 'reduce-scatter': 1.0}


def roofline(program: Dict, chip, devices: int, per_step: int) -> Dict[str, float]:
  """The estimate for one compiled program (see the module docstring)."""
  compute = program['flops'] / chip.bf16_flops
  memory = program['bytes_accessed'] / chip.hbm_bandwidth
  share = (devices - 1) / devices if devices > 1 else 0.0
  comm = sum(c['bytes'] * (_RING[k] * share if k in _RING else 1.0)
             for k, c in program['collectives'].items()) / chip.ici_bandwidth
  step = max(compute, memory) + comm
  return dict(compute_seconds=compute, memory_seconds=memory, collective_seconds=comm,
              step_seconds=step, mfu=compute / step if step else 0.0,
              per_chip_per_second=per_step / devices / step if step else 0.0,
              per_slice_per_second=per_step / step if step else 0.0)


def fits(program: Dict, chip) -> bool:
  return program['memory']['total'] <= HEADROOM * chip.hbm_bytes


def _gib(n: float) -> str:
  return f'{n / 2**30:.2f} GiB' if n >= 2**30 else f'{n / 2**20:.2f} MiB'


def markdown(report: Dict) -> str:
  chip, unit = report['chip'], report['unit']
  lines = [f'# Compile check: {report["config"]} on {report["topology"]} '
           f'({report["devices"]} chips of {chip["name"]})', '',
           'Compiled figures per chip (XLA memory and cost analyses); the step time and rates '
           'are a roofline ESTIMATE from published chip figures '
           f'([source]({chip["source"]})), not a measurement.', '',
           f'| program | {unit}/step (slice) | arguments | temporaries | outputs | total | '
           f'HBM | fits (<= {HEADROOM:.0%}) | GFLOP/chip | GB/chip | compile s | '
           'collectives (count, MB) | est. step ms | est. MFU | '
           f'est. {unit}/s/chip | est. {unit}/s/slice |',
           '|' + ' --- |' * 17]
  for name, p in report['programs'].items():
    m, r = p['memory'], p['estimate']
    comm = ', '.join(f'{k} {c["count"]} ({c["bytes"] / 1e6:.2f})'
                     for k, c in p['collectives'].items()) or 'none'
    lines.append(
        f'| {name} | {p["per_step"]} | {_gib(m["arguments"])} | {_gib(m["temporaries"])} | '
        f'{_gib(m["outputs"])} | {_gib(m["total"])} | {_gib(chip["hbm_bytes"])} | '
        f'{"yes" if p["fits"] else "NO"} | {p["flops"] / 1e9:.3f} | '
        f'{p["bytes_accessed"] / 1e9:.3f} | {p["compile_seconds"]:.1f} | {comm} | '
        f'{r["step_seconds"] * 1e3:.3f} | {r["mfu"]:.1%} | {r["per_chip_per_second"]:.0f} | '
        f'{r["per_slice_per_second"]:.0f} |')
  return '\n'.join(lines) + '\n'


def write(report: Dict, out: str) -> None:
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, 'report.json'), 'w') as f:
    json.dump(report, f, indent=1, sort_keys=True)
  with open(os.path.join(out, 'report.md'), 'w') as f:
    f.write(markdown(report))
