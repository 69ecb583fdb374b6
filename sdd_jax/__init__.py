"""sdd_jax: self-knowledge distillation (SD-Dropout and friends) in JAX/Flax."""
from sdd_jax import parallel as _parallel

# libtpu (the `tpu` extra) prints TPU-discovery errors at JAX's backend start on a host without
# TPUs; where only the CPU can start, start only the CPU (docstring of skip_absent_tpu).
_parallel.skip_absent_tpu()
