"""The task registry: `config.task` -> the task's trainer and validation (absent =
'classification', the image task of every config before translation).

A `Task` names its `train_and_evaluate(config, workdir, *, stop_after_step=0)`, its
`validate(config)`, its `evaluate(workdir, config, overrides, names)` (what `evaluate.py` runs
on a workdir of the task), its `compile_targets` module (the compile check, `python -m
sdd_jax.aot`) and the summary figures `train.py` prints (the first one, a
percentage, is its headline: test top-1, valid BLEU). Entries import their modules on
first use, so the classification path never imports the translation package.

A task defined outside the library (the tests' toy task, `tests/train/toy_task.py`) joins the
registry for the length of a `with registered(name, task):` block.
"""
import contextlib
import dataclasses
import importlib
from typing import Callable, Iterator, Tuple

from sdd_jax import registry
from sdd_jax.config.fields import ConfigError

DEFAULT = 'classification'


@dataclasses.dataclass(frozen=True)
class Task:
  trainer: str  # module with train_and_evaluate(config, workdir, *, stop_after_step=0)
  validation: str  # module with validate(config)
  printed: Tuple[str, ...]  # summary keys train.py prints, the headline (0..100) first
  evaluation: str  # module with evaluate(workdir, config, overrides, names) (evaluate.py)
  # module with create_targets(config, mesh): the jitted train and eval steps with abstract
  # arguments (python -m sdd_jax.aot); '' = the task has none
  compile_targets: str = ''
  # module with follow(workdir, config, overrides, names, *, interval_s, idle_s, out): the
  # evaluation that follows a running training (evaluate.py --follow); '' = the task has none
  follower: str = ''

  @property
  def train_and_evaluate(self) -> Callable:
    return importlib.import_module(self.trainer).train_and_evaluate

  @property
  def validate(self) -> Callable:
    return importlib.import_module(self.validation).validate

  @property
  def evaluate(self) -> Callable:
    return importlib.import_module(self.evaluation).evaluate

  @property
  def follow(self) -> Callable:
    return importlib.import_module(self.follower).follow

  @property
  def create_compile_targets(self) -> Callable:
    return importlib.import_module(self.compile_targets).create_targets


TASKS = registry.Registry('task')
TASKS.register('classification')(Task(
    'sdd_jax.classification.trainer', 'sdd_jax.config.validation',
    ('test/top1', 'test/top5', 'test/nll', 'test/ece', 'wall_seconds'),
    'sdd_jax.classification.evaluation', 'sdd_jax.classification.compile_targets',
    follower='sdd_jax.classification.follow'))
TASKS.register('translation')(Task(
    'sdd_jax.translation.trainer', 'sdd_jax.translation.validation',
    ('valid/bleu', 'test/bleu', 'test/bleu_tok', 'test/nll', 'wall_seconds'),
    'sdd_jax.translation.evaluation', 'sdd_jax.translation.compile_targets'))


@contextlib.contextmanager
def registered(name: str, task: Task) -> Iterator[Task]:
  """`task` is known as `name` (ValueError if that is taken) inside the block, and forgotten
  after it: the registry of the library's tasks is left as it was."""
  global TASKS
  library = TASKS
  extended = registry.Registry('task')
  for known in library:
    extended.register(known)(library.get(known))
  extended.register(name)(task)
  TASKS = extended
  try:
    yield task
  finally:
    TASKS = library


def task_of(config) -> Task:
  """The `Task` of `config.task` (default 'classification'); ConfigError naming the known
  tasks for an unknown one."""
  name = config.get('task', DEFAULT)
  try:
    return TASKS.get(name)
  except ValueError as e:
    raise ConfigError(f'config.task: {e} (set --config.task=...)') from None


def train_and_evaluate(config, workdir: str, *, stop_after_step: int = 0):
  """Trains `config` with its task's trainer; returns the summary."""
  return task_of(config).train_and_evaluate(config, workdir, stop_after_step=stop_after_step)


def validate(config) -> None:
  task_of(config).validate(config)
