import pytest

from sdd_jax.registry import Registry


def test_unknown_name_lists_the_known_ones():
  registry = Registry('widget')
  registry.register('b')(1)
  registry.register('a')(2)
  assert registry.get('a') == 2 and registry.names() == ['a', 'b'] and 'b' in registry
  with pytest.raises(ValueError, match=r"unknown widget 'c'; known widgets: a, b"):
    registry.get('c')


def test_a_name_is_taken_once():
  registry = Registry('widget')
  registry.register('a')(1)
  with pytest.raises(ValueError, match="widget 'a' is registered twice"):
    registry.register('a')(2)
