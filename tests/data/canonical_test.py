"""Canonical order (docs/evaluation.md §0.6): TFDS splits sorted by `id`, others as they are; the
IndexedSource view; the OOD image-folder order (class folder, then file name)."""
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from configs.common import data_config
from sdd_jax.data import canonical
from sdd_jax.data import create_source
from sdd_jax.data import ood


def test_tfds_split_sorted_by_id_and_viewed_in_that_order():
  config = data_config('cifar100', num_classes=100)
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
    source = create_source(config, 'test')
    order = canonical.canonical_order(config, 'test', source)
    ids = canonical.tfds_sort_keys(tfds.builder('cifar100'), 'test', 'id')
    assert sorted(order.tolist()) == list(range(12))
    assert ids[order].tolist() == sorted(ids.tolist())
    view = canonical.IndexedSource(source, order[3:9])
    assert len(view) == 6
    np.testing.assert_array_equal(view[0]['image'], source[int(order[3])]['image'])
    np.testing.assert_array_equal(view.labels(), source.labels()[order[3:9]])
    np.testing.assert_array_equal(np.stack(view.get_batch([1, 2])['images']),
                                  np.stack([source[int(i)]['image'] for i in order[4:6]]))


def test_other_sources_keep_their_order():
  config = data_config('x', source='synthetic', num_examples=7, num_classes=3)
  source = create_source(config, 'test')
  np.testing.assert_array_equal(canonical.canonical_order(config, 'test', source), np.arange(7))


def test_image_files_in_image_folder_order(tmp_path):
  for rel in ('a-b/2.png', 'a/10.png', 'a/09.png', 'b/x/1.png', 'top.png', 'a/skip.txt'):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.endswith('.png'):
      Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    else:
      path.write_text('not an image')
  files = ood.ImageFiles(str(tmp_path))
  assert [f[len(str(tmp_path)) + 1:] for f in files.files] == [
      'a/09.png', 'a/10.png', 'a-b/2.png', 'b/x/1.png', 'top.png']
  assert files[0]['image'].shape == (4, 4, 3) and files.labels().tolist() == [0] * 5
