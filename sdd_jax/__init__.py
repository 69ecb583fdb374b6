"""sdd_jax: self-knowledge distillation (SD-Dropout and friends) in JAX/Flax."""
