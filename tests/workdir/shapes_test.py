"""checkpoint_shapes.tree_mismatch on hand-built trees: what a refused checkpoint's message
names (evaluate_devices_test.py checks it on real checkpoints)."""
import jax
import numpy as np
import pytest

from sdd_jax.workdir import shapes as checkpoint_shapes


def _tree(**shapes):
  """Nested dicts of ShapeDtypeStructs from keys such as params__Dense_0__kernel=(4, 2)."""
  tree = {}
  for path, shape in shapes.items():
    node = tree
    *parents, leaf = path.split('__')
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = jax.ShapeDtypeStruct(shape, np.float32)
  return tree


STORED = _tree(batch_stats__bn__mean=(4,), params__Dense_0__kernel=(4, 10),
               params__Dense_0__bias=(10,))


@pytest.mark.parametrize('expected, strict, message', [
    (STORED, True, None),
    # Weights before statistics, whatever the alphabet says; the rest counted.
    (_tree(batch_stats__bn__mean=(8,), params__Dense_0__kernel=(8, 10),
           params__Dense_0__bias=(10,)), True,
     'params/Dense_0/kernel: stored (4, 10), this config (8, 10), and 1 more array(s) differ'),
    (_tree(batch_stats__bn__mean=(4,), params__Dense_0__kernel=(4, 10),
           params__Dense_0__bias=(10,), params__Dense_1__bias=(3,)), True,
     'params/Dense_1/bias: not stored, this config (3,)'),
    (_tree(batch_stats__bn__mean=(4,), params__Dense_0__kernel=(4, 10)), True,
     'params/Dense_0/bias: stored (10,), not in this config'),
    # Not strict (training's resume target): only arrays both trees hold are compared.
    (_tree(params__Dense_0__kernel=(4, 10), params__Dense_1__bias=(3,)), False, None),
    (_tree(params__Dense_0__bias=(5,), params__Dense_1__bias=(3,)), False,
     'params/Dense_0/bias: stored (10,), this config (5,)'),
])
def test_the_first_difference_is_named(expected, strict, message):
  assert checkpoint_shapes.tree_mismatch(STORED, expected, strict=strict) == message
