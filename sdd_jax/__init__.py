"""sdd_jax: self-knowledge distillation (SD-Dropout and friends) in JAX/Flax."""
import importlib.util as _importlib_util

# libtpu (the `tpu` extra) prints TPU-discovery errors at JAX's backend start on a host without
# TPUs; where only the CPU can start, start only the CPU (docstring of skip_absent_tpu). Without
# libtpu nothing is checked, and `import sdd_jax` imports no JAX.
if _importlib_util.find_spec('libtpu') is not None:
  from sdd_jax import parallel as _parallel  # pylint: disable=g-import-not-at-top
  _parallel.skip_absent_tpu()
