"""What a stored checkpoint holds, read from orbax's metadata alone (no array is read), and
how its arrays differ from the ones a config builds: so a checkpoint of another model is
refused with what differs named, before any restore."""
from typing import Any, Dict, Optional, Tuple

import jax
import orbax.checkpoint as ocp
from etils import epath


def item_metadata(step_dir: str) -> Any:
  """The stored tree of `ArrayMetadata` (read through the handler: orbax's checkpointer would
  warn that the item folder has no step metadata of its own)."""
  return ocp.StandardCheckpointHandler().metadata(epath.Path(step_dir) / 'default').tree


def shape_mismatch(step_dir: str, abstract: Any) -> Optional[str]:
  """`tree_mismatch` of the stored tree and `abstract` over the arrays both hold; None when
  none differs or the metadata cannot be read (the restore then decides)."""
  try:
    stored = item_metadata(step_dir)
  except Exception:  # pylint: disable=broad-except
    return None
  return tree_mismatch(stored, abstract, strict=False)


def tree_mismatch(stored: Any, expected: Any, strict: bool = True) -> Optional[str]:
  """What differs between the array shapes of a `stored` tree and the `expected` one: the
  first of '<path>: stored <shape>, this config <shape>', then (`strict`) an array only one
  tree holds ('... not stored, this config <shape>', '... stored <shape>, not in this
  config'), weights before statistics, with ', and N more' when several differ; None when
  they agree."""
  stored_shapes, expected_shapes = leaf_shapes(stored), leaf_shapes(expected)
  weights_first = lambda shapes: sorted(shapes.items(), key=lambda item: item[0][0] != 'params')
  show = '/'.join
  differences = [f'{show(path)}: stored {stored_shapes[path]}, this config {shape}'
                 for path, shape in weights_first(expected_shapes)
                 if path in stored_shapes and stored_shapes[path] != shape]
  if strict:
    differences += [f'{show(path)}: not stored, this config {shape}'
                    for path, shape in weights_first(expected_shapes)
                    if path not in stored_shapes]
    differences += [f'{show(path)}: stored {shape}, not in this config'
                    for path, shape in weights_first(stored_shapes)
                    if path not in expected_shapes]
  if not differences:
    return None
  more = len(differences) - 1
  return differences[0] + (f', and {more} more array(s) differ' if more else '')


def leaf_shapes(tree: Any) -> Dict[Tuple[str, ...], Tuple[int, ...]]:
  """{path of names: shape} of a tree's array leaves, whatever the containers (a dataclass
  field and the dict key of the same name give the same path)."""
  def name(entry) -> str:
    for attr in ('key', 'name', 'idx'):
      if hasattr(entry, attr):
        return str(getattr(entry, attr))
    return str(entry)
  return {tuple(name(e) for e in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
          if hasattr(leaf, 'shape')}
