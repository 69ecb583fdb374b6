"""`UserError`: the one base class of the mistakes a user fixes by changing a flag, a config
value, a file or the workdir.

The entry points (`train.py`, `evaluate.py`, `python -m sdd_jax.sweep`, `python -m
sdd_jax.report`) print a `UserError` as one line `error: <message>` and exit 1; any other
exception is a bug and keeps its traceback. Every subclass's message is one line that names
what to change.

`DataError` is the data sets' (images: `sdd_jax.data`, text: `sdd_jax.translation`).
"""


class UserError(ValueError):
  """A mistake of the user's, not a bug: the message (one line) says what to change."""


class DataError(UserError):
  """The data asked for is missing or does not match the config; the message says the fix."""
