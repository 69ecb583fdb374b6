"""The roofline estimate and the HLO collective count against hand-worked numbers (no
compilation)."""
import pytest

from sdd_jax.aot import chips
from sdd_jax.aot import compile as compile_lib
from sdd_jax.aot import report

HLO = """
  %all-reduce.95 = (f32[4]{0:T(128)S(1)}, bf16[8,2]{1,0}) all-reduce(%a, %b), channel_id=3
  %get-tuple-element.584 = f32[4]{0} get-tuple-element(%all-reduce.95), index=0
  %all-gather-start = (f32[2,3]{1,0}, f32[8,3]{1,0}) all-gather-start(%c), dimensions={0}
  %all-gather-done = f32[8,3]{1,0} all-gather-done(%all-gather-start)
  ROOT %collective-permute.1 = s32[5]{0} collective-permute(%d), source_target_pairs={{0,1}}
  %fusion = f32[7]{0} fusion(%all-reduce.95), kind=kLoop
"""


def test_collectives_are_counted_with_their_result_bytes():
  assert compile_lib.collectives(HLO) == {
      'all-reduce': {'count': 1, 'bytes': 4 * 4 + 8 * 2 * 2},  # a tuple: both results
      'all-gather': {'count': 1, 'bytes': 8 * 3 * 4},  # async start: its largest element
      'collective-permute': {'count': 1, 'bytes': 5 * 4}}


def test_the_roofline_by_hand():
  chip = chips.Chip('x', bf16_flops=100e12, hbm_bytes=16e9, hbm_bandwidth=1e12,
                    ici_bandwidth=100e9, source='hand')
  program = dict(flops=1e12, bytes_accessed=20e9, memory=dict(total=15e9),
                 collectives={'all-reduce': {'count': 3, 'bytes': 400e6},
                              'collective-permute': {'count': 1, 'bytes': 100e6}})
  got = report.roofline(program, chip, devices=4, per_step=256)
  # compute 1e12 / 1e14 = 10 ms; memory 20e9 / 1e12 = 20 ms;
  # collectives (400e6 * 2 * 3/4 + 100e6) / 100e9 = 7 ms
  assert got['compute_seconds'] == pytest.approx(0.010)
  assert got['memory_seconds'] == pytest.approx(0.020)
  assert got['collective_seconds'] == pytest.approx(0.007)
  assert got['step_seconds'] == pytest.approx(0.027)
  assert got['mfu'] == pytest.approx(10 / 27)
  assert got['per_slice_per_second'] == pytest.approx(256 / 0.027)
  assert got['per_chip_per_second'] == pytest.approx(64 / 0.027)
  assert not report.fits(program, chip)  # 15e9 > 0.9 * 16e9
  assert report.fits(dict(program, memory=dict(total=14.4e9)), chip)


def test_chips_have_sources_and_unknown_chips_are_one_line():
  assert set(chips.CHIPS) == {'v4', 'v5e', 'v5p', 'v6e'}
  for chip in chips.CHIPS.values():
    assert chip.source.startswith('https://cloud.google.com/tpu/docs/')
  assert chips.chip_of('v5e:16x16') is chips.CHIPS['v5e']
  with pytest.raises(chips.ChipError, match=r"--topology v3:2x2: unknown chip 'v3'; known: v4, "
                     r'v5e, v5p, v6e'):
    chips.chip_of('v3:2x2')
