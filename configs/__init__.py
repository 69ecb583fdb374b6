"""The experiment configs: one `get_config(arg)` per file, loaded by path (`--config
configs/<experiment>.py[:ARG]`). A package, installed with `sdd_jax` (pyproject.toml), so that a
config file's `from configs import common` works from any working folder."""
