"""The emulator is a real GCS server for both clients a workdir uses: epath (gcsfs) and orbax
(TensorStore's GCS driver)."""
import jax.numpy as jnp
import numpy as np
from etils import epath
import orbax.checkpoint as ocp


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
