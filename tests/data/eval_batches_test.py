"""Evaluation batches: every example once, in order, padded and masked, split across processes."""
import numpy as np
import pytest

from configs.common import data_config
from sdd_jax.data import DataError, create_eval_batches, create_source, num_eval_batches

CONFIG = data_config('digits', source='digits', num_classes=10, image_size=8, mean=(0.5,),
                     std=(0.25,), prefetch=2, num_workers=2)
SOURCE = create_source(CONFIG, 'test')  # 360 examples


def test_every_example_once_in_order_with_zero_padding():
  batches = list(create_eval_batches(SOURCE, CONFIG, global_batch=128))
  assert len(batches) == num_eval_batches(360, 128) == 3
  mask = np.concatenate([b['mask'] for b in batches])
  index = np.concatenate([b['index'] for b in batches])
  assert mask.sum() == 360 and mask.dtype == bool
  np.testing.assert_array_equal(index[mask], np.arange(360))
  images = np.concatenate([b['images'] for b in batches])
  labels = np.concatenate([b['labels'] for b in batches])
  np.testing.assert_array_equal(images[mask], SOURCE.images)  # uint8, normalised on device
  np.testing.assert_array_equal(labels[mask], SOURCE.labels())
  assert not images[~mask].any() and not labels[~mask].any() and not index[~mask].any()
  assert images.dtype == np.uint8 and labels.dtype == index.dtype == np.int32


@pytest.mark.parametrize('process_count', [2, 4])
def test_processes_together_cover_everything_once(process_count):
  whole = list(create_eval_batches(SOURCE, CONFIG, global_batch=96))
  parts = [list(create_eval_batches(SOURCE, CONFIG, global_batch=96, process_index=p,
                                    process_count=process_count)) for p in range(process_count)]
  assert all(len(part) == len(whole) == 4 for part in parts)
  covered = np.concatenate([b['index'][b['mask']] for part in parts for b in part])
  np.testing.assert_array_equal(np.sort(covered), np.arange(360))
  for g, batch in enumerate(whole):
    for key in batch:
      np.testing.assert_array_equal(np.concatenate([part[g][key] for part in parts]), batch[key])
  # The last global batch holds 360 - 288 = 72 real rows: 4 processes of 24 -> 24, 24, 24, 0.
  assert [part[-1]['mask'].sum() for part in parts] == ([48, 24] if process_count == 2
                                                        else [24, 24, 24, 0])


def test_global_batch_must_divide_by_process_count():
  with pytest.raises(DataError, match='global batch 10 must be a positive multiple'):
    create_eval_batches(SOURCE, CONFIG, global_batch=10, process_count=4)


@pytest.mark.parametrize('process_count', [1, 4])
def test_padded_batches_hold_the_same_examples_in_more_rows(process_count):
  """global_batch 100 in 104 rows (13 devices' worth): rows 100..103 of every global batch are
  zero padding with mask False; the examples per batch are those of the unpadded batches."""
  plain = list(create_eval_batches(SOURCE, CONFIG, global_batch=100))
  parts = [list(create_eval_batches(SOURCE, CONFIG, global_batch=100, padded_batch=104,
                                    process_index=p, process_count=process_count))
           for p in range(process_count)]
  assert all(len(part) == len(plain) == 4 for part in parts)
  for g, batch in enumerate(plain):
    padded = {key: np.concatenate([part[g][key] for part in parts]) for key in batch}
    assert len(padded['mask']) == 104 and not padded['mask'][100:].any()
    assert not padded['images'][100:].any() and not padded['index'][100:].any()
    for key in batch:
      np.testing.assert_array_equal(padded[key][:100], batch[key])
  # The last batch holds 60 examples: processes of 26 rows -> 26, 26, 8, 0 real ones.
  assert [part[-1]['mask'].sum() for part in parts] == ([60] if process_count == 1
                                                        else [26, 26, 8, 0])
