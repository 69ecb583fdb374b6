"""The compile check: `python -m sdd_jax.aot --config C[:ARG] --topology NAME`.

Compiles a config's real train and eval steps for a TPU slice that is not here (libtpu's
topology API, the `tpu` extra: requirements-tpu.txt) and reports per-chip memory, FLOPs, bytes,
collectives and a roofline estimate (docs/pods.md, "Compile check"). An entry package: it
reaches the tasks only through the task registry (`tasks.Task.compile_targets`).
"""
