"""One tiny registry: models, methods, evaluators and data sources are chosen by name.

An unknown name raises a ``ValueError`` that lists the known ones and suggests the nearest
(`nearest`, which config errors use too), so a typo gives one line saying what to write instead.
"""
import difflib
from typing import Callable, Dict, Generic, Iterable, Iterator, TypeVar

T = TypeVar('T')


def nearest(name: str, known: Iterable[str]) -> str:
  """'; did you mean x?' for the closest of `known` to `name`, or ''."""
  close = difflib.get_close_matches(str(name), sorted(known), n=3, cutoff=0.6)
  return f'; did you mean {" or ".join(close)}?' if close else ''


class Registry(Generic[T]):
  """Maps names to objects (classes or factory functions)."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: Dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator: ``@REGISTRY.register('name')``. A name can be taken only once."""
    def decorator(obj: T) -> T:
      if name in self._entries:
        raise ValueError(f'{self.kind} {name!r} is registered twice')
      self._entries[name] = obj
      return obj
    return decorator

  def get(self, name: str) -> T:
    if name not in self._entries:
      raise ValueError(
          f'unknown {self.kind} {name!r}; known {self.kind}s: {", ".join(self.names())}'
          f'{nearest(name, self.names())}')
    return self._entries[name]

  def names(self) -> list:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
