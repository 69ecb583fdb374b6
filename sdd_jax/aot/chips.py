"""Published per-chip figures of the TPU generations the compile check knows, each with its
source (Google Cloud TPU documentation, the chip's system-architecture page).

`bf16_flops`: peak bf16 FLOP/s per chip; `hbm_bytes`: HBM capacity per chip (bytes, as the
page gives it: GB = 1e9, GiB = 2**30); `hbm_bandwidth`: HBM bytes/s per chip; `ici_bandwidth`:
bidirectional inter-chip-interconnect bytes/s per chip. v4's page gives no per-chip ICI figure:
there it is the page's all-reduce bandwidth per Pod (1.1 PB/s) over its 4096 chips, a derived
figure (labelled so in `ici_note`).
"""
import dataclasses

from sdd_jax.errors import UserError


class ChipError(UserError):
  """A topology whose chip generation the table does not know."""


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  bf16_flops: float
  hbm_bytes: float
  hbm_bandwidth: float
  ici_bandwidth: float
  source: str
  ici_note: str = 'bidirectional ICI bandwidth per chip, as published'


GB, GIB = 1e9, 2.0**30
CHIPS = {
    'v4': Chip('v4', 275e12, 32 * GIB, 1200 * GB, 1.1e15 / 4096,
               'https://cloud.google.com/tpu/docs/v4',
               'derived: all-reduce bandwidth per Pod (1.1 PB/s) / 4096 chips'),
    'v5e': Chip('v5e', 197e12, 16 * GB, 819 * GB, 400 * GB,
                'https://cloud.google.com/tpu/docs/v5e'),
    'v5p': Chip('v5p', 459e12, 95 * GB, 2765 * GB, 1200 * GB,
                'https://cloud.google.com/tpu/docs/v5p-training'),
    'v6e': Chip('v6e', 918e12, 32 * GB, 1638 * GB, 800 * GB,
                'https://cloud.google.com/tpu/docs/v6e'),
}


def chip_of(topology: str) -> Chip:
  """The `Chip` of a topology name 'v5e:2x2' (the part before ':')."""
  name = topology.split(':', 1)[0].lower()
  if name not in CHIPS:
    raise ChipError(f'--topology {topology}: unknown chip {name!r}; known: '
                    f'{", ".join(sorted(CHIPS))} (e.g. --topology v5e:2x2)')
  return CHIPS[name]
