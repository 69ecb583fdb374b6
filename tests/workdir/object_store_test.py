"""The emulator is a real GCS server for both clients a workdir uses: epath (gcsfs) and orbax
(TensorStore's GCS driver); workdir_path's walk and joins keep the gs:// scheme."""
import os

import jax.numpy as jnp
import numpy as np
from etils import epath
import orbax.checkpoint as ocp

from sdd_jax import sweep
from sdd_jax.workdir import paths as workdir_path


def test_epath_and_orbax_reach_the_emulator(gcs_root):
  root = epath.Path(gcs_root)
  (root / 'a').mkdir(parents=True, exist_ok=True)
  (root / 'a' / 'x.json').write_text('{"v": 1}')
  assert (root / 'a' / 'x.json').read_text() == '{"v": 1}'
  assert [p.name for p in (root / 'a').iterdir()] == ['x.json']
  manager = ocp.CheckpointManager(root / 'checkpoints')
  tree = {'w': jnp.arange(6.0).reshape(2, 3)}
  manager.save(3, args=ocp.args.StandardSave(tree))
  manager.wait_until_finished()
  assert manager.all_steps() == [3]
  restored = manager.restore(3, args=ocp.args.StandardRestore({'w': jnp.zeros((2, 3))}))
  np.testing.assert_array_equal(np.asarray(restored['w']), np.arange(6.0).reshape(2, 3))
  manager.close()
  # The bytes really live on the server: a fresh client lists them.
  assert 'checkpoints' in {p.name for p in root.iterdir()}


def test_fresh_roots_are_empty_and_distinct(gcs_root):
  from tests import object_store
  other = object_store.fresh_root()
  assert other != gcs_root
  assert not epath.Path(other).exists()


def test_walk_lists_a_bucket_as_os_walk_lists_the_same_tree_on_disk(gcs_root, tmp_path):
  files = ('run/config.json', 'run/evals/calibration/results.json', 'run/checkpoints/4/x',
           'other/a/config.json', 'top.txt')
  for name in files:
    for root in (str(tmp_path), gcs_root):
      target = epath.Path(f'{root}/{name}')
      target.parent.mkdir(parents=True, exist_ok=True)
      target.write_text(name)

  def relative(root, walk):
    return sorted((folder[len(root):], sorted(dirs), sorted(names))
                  for folder, dirs, names in walk)

  assert relative(gcs_root, workdir_path.walk(gcs_root)) == relative(
      str(tmp_path), os.walk(str(tmp_path)))
  # Pruning in place skips a folder, as with os.walk.
  seen = []
  for folder, dirs, _ in workdir_path.walk(gcs_root):
    seen.append(folder[len(gcs_root):])
    dirs[:] = [d for d in dirs if d != 'checkpoints']
  assert '/run/checkpoints' not in seen and '/run/evals' in seen


def test_uri_joins_and_links_keep_the_scheme():
  assert workdir_path.join('gs://b/root/', 'run', 'summary.json') == 'gs://b/root/run/summary.json'
  assert workdir_path.join('/tmp/root', 'run') == '/tmp/root/run'
  assert workdir_path.normalize('gs://b/root/') == 'gs://b/root'
  assert workdir_path.normalize('/tmp/a/../b/') == '/tmp/b'
  assert workdir_path.relative_link('gs://b/r/evals/x.png', 'gs://b/r') == 'evals/x.png'
  assert workdir_path.relative_link('gs://b/r/evals/x.png', '/tmp/out') == 'gs://b/r/evals/x.png'
  assert workdir_path.relative_link('/tmp/r/x.png', '/tmp/out') == '../r/x.png'
  # The sweep's workdirs below a gs:// root stay URIs.
  commands = sweep.plan('c.py', 'gs://b/sweep', [('seed', ['0', '1'])])
  assert [c[c.index('--workdir') + 1] for c in commands] == ['gs://b/sweep/seed=0',
                                                              'gs://b/sweep/seed=1']
