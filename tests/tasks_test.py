"""The task registry: `config.task` picks the trainer, validation and evaluation (absent =
classification)."""
import ml_collections
import pytest

from sdd_jax import tasks
from sdd_jax.config.fields import ConfigError


def test_a_config_without_task_is_classification():
  task = tasks.task_of(ml_collections.ConfigDict({'seed': 0}))
  assert task is tasks.TASKS.get('classification')
  assert task.trainer == 'sdd_jax.classification.trainer' and task.printed[0] == 'test/top1'


@pytest.mark.parametrize('name', tasks.TASKS.names())
def test_every_task_names_callables_that_exist(name):
  task = tasks.TASKS.get(name)
  assert callable(task.train_and_evaluate) and callable(task.validate)
  assert callable(task.evaluate)
  assert task is tasks.task_of(ml_collections.ConfigDict({'task': name}))


def test_an_unknown_task_is_one_line_naming_the_known_ones():
  with pytest.raises(ConfigError, match=r"^config.task: unknown task 'translate'; known tasks: "
                                        r'classification, translation; did you mean translation\? '
                                        r'\(set --config.task=...\)$'):
    tasks.validate(ml_collections.ConfigDict({'task': 'translate'}))
