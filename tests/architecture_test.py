"""The layout's rules, checked on the real import graph (every module of `sdd_jax` parsed with
`ast`; nothing is imported or run).

The graph: an edge from module A to module B when A has `import B`, `from B import name`
(`from P import n` is an edge to `P.n` when that is a module, else to `P`), a relative import,
or a string constant that is exactly B's dotted name (the task registry's
`importlib.import_module` entries). Imports inside functions count as well.

The rules:
(a) no import cycles between modules;
(b) imports point down: a module never imports the `__init__` of its own package or of a
    package above it (only their submodules, so a package's re-exports never loop back into
    it; `API_IN_INIT` lists the packages whose registry is defined in the `__init__` itself,
    which imports none of the modules that read it), and the shared code (the top-level
    bases and every package but the task packages and the entry modules below) never
    imports a task package or an entry module;
(c) no task package (`classification`, `translation`, `detection`) imports another: what two
    tasks share lives in a shared package (`config`, `workdir`, `train`, `metrics`, `data`,
    `methods`, `models`, `evaluators`, ...); `sdd_jax.tasks` is the one place that names them;
(d) the top level of `sdd_jax/` holds at most ten modules;
(e) an entry package (`ENTRY_PACKAGES`: the compile check `sdd_jax.aot`) imports no task
    package: it reaches the tasks through `sdd_jax.tasks` alone.
"""
import ast
import os
import pathlib
from typing import Dict, List, Set

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = 'sdd_jax'
TASKS = ('classification', 'translation', 'detection')
# The entry modules: what a user runs (`evaluate.py` dispatches through `evaluation`), and the
# task registry, which names each task's modules.
ENTRIES = ('sdd_jax.demo', 'sdd_jax.export', 'sdd_jax.sweep', 'sdd_jax.evaluation',
           'sdd_jax.tasks')
# Entry packages: what a user runs as `python -m`, a package of several modules. Like an entry
# module nothing shared imports them; unlike one they reach the tasks only through the task
# registry (`sdd_jax.tasks`), never a task package directly (rule (e)).
ENTRY_PACKAGES = ('sdd_jax.aot',)
MAX_TOP_LEVEL = 10
# (module, its package): the package's registry is defined in its __init__ (models.MODELS,
# evaluators.EVALUATORS), and the __init__ does not import the module (rule (a) checks it).
API_IN_INIT = {('sdd_jax.models.build', 'sdd_jax.models'),
               ('sdd_jax.models.byot', 'sdd_jax.models'),
               ('sdd_jax.evaluators.runner', 'sdd_jax.evaluators')}


def _modules(root: pathlib.Path) -> Dict[str, pathlib.Path]:
  """dotted name -> file; a package is named by its `__init__.py`'s folder."""
  modules = {}
  for path in sorted((root / PACKAGE).rglob('*.py')):
    parts = path.relative_to(root).with_suffix('').parts
    if parts[-1] == '__init__':
      parts = parts[:-1]
    modules['.'.join(parts)] = path
  return modules


def _is_package(modules, name: str) -> bool:
  return modules[name].name == '__init__.py'


def _resolve(modules, name: str) -> str:
  """`name`, or its longest prefix that is a module (`sdd_jax.x.attr` -> `sdd_jax.x`)."""
  while name and name not in modules:
    name = name.rpartition('.')[0]
  return name


def import_graph(root: pathlib.Path = ROOT) -> Dict[str, Set[str]]:
  """module -> the modules it imports (see the module's docstring)."""
  modules = _modules(root)
  graph = {}
  for name, path in modules.items():
    package = name if _is_package(modules, name) else name.rpartition('.')[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level:
          anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
          base = '.'.join(anchor + ([base] if base else []))
        targets = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base
                   for alias in node.names]
      elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        targets = [node.value] if node.value in modules else []
      else:
        continue
      for target in targets:
        if target == PACKAGE or target.startswith(PACKAGE + '.'):
          resolved = _resolve(modules, target)
          if resolved and resolved != name:
            edges.add(resolved)
    graph[name] = edges
  return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """One cycle per strongly connected component of more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def _task_of(name: str):
  parts = name.split('.')
  return parts[1] if len(parts) > 1 and parts[1] in TASKS else None


def _in_entry_package(name: str) -> bool:
  return any(name == p or name.startswith(p + '.') for p in ENTRY_PACKAGES)


def _is_entry(name: str) -> bool:
  return name in ENTRIES or _in_entry_package(name)


def violations(graph: Dict[str, Set[str]], modules) -> Dict[str, List[str]]:
  found = {'cycles': [' -> '.join(c) for c in _cycles(graph)], 'upward': [], 'shared': [],
           'tasks': [], 'entry_packages': []}
  for name, targets in sorted(graph.items()):
    ancestors = {'.'.join(name.split('.')[:i]) for i in range(1, len(name.split('.')))}
    if _is_package(modules, name):
      ancestors.add(name)
    for target in sorted(targets):
      if (target in ancestors and _is_package(modules, target)
          and (name, target) not in API_IN_INIT):
        found['upward'].append(f'{name} imports {target} (its own or a parent package)')
      source_task, target_task = _task_of(name), _task_of(target)
      if source_task is None and not _is_entry(name) and (target_task or _is_entry(target)):
        found['shared'].append(f'{name} (shared) imports {target}')
      if source_task and target_task and source_task != target_task:
        found['tasks'].append(f'{name} ({source_task}) imports {target} ({target_task})')
      if _in_entry_package(name) and target_task:
        found['entry_packages'].append(f'{name} (entry package) imports {target} ({target_task})')
  return found


def test_the_import_graph_has_no_cycles():
  graph = import_graph()
  assert violations(graph, _modules(ROOT))['cycles'] == []


def test_imports_point_down():
  found = violations(import_graph(), _modules(ROOT))
  assert found['upward'] == []
  assert found['shared'] == []


def test_no_task_imports_another():
  graph = import_graph()
  found = violations(graph, _modules(ROOT))
  assert found['tasks'] == []
  for task in TASKS:  # the rule has something to check: every task package is in the graph
    assert f'{PACKAGE}.{task}' in graph


def test_entry_packages_reach_tasks_only_through_the_registry():
  graph = import_graph()
  assert violations(graph, _modules(ROOT))['entry_packages'] == []
  for package in ENTRY_PACKAGES:  # the rule has something to check
    assert 'sdd_jax.tasks' in set().union(*(t for n, t in graph.items()
                                            if n == package or n.startswith(package + '.')))


def test_the_top_level_is_short():
  top = sorted(p.name for p in (ROOT / PACKAGE).glob('*.py'))
  assert len(top) <= MAX_TOP_LEVEL, top


def test_the_checks_see_a_forbidden_import(tmp_path):
  """The rules fire: a copy of the package with translation importing classification, and a
  cycle through it, is refused on both counts."""
  copy = tmp_path / PACKAGE
  for path in (ROOT / PACKAGE).rglob('*.py'):
    target = copy / path.relative_to(ROOT / PACKAGE)
    os.makedirs(target.parent, exist_ok=True)
    target.write_text(path.read_text())
  step = copy / 'translation' / 'step.py'
  step.write_text(step.read_text() + '\nfrom sdd_jax.classification import step as _s\n')
  keys = copy / 'train' / 'keys.py'
  keys.write_text(keys.read_text() + '\nfrom sdd_jax.translation import step as _t\n')
  chips = copy / 'aot' / 'chips.py'
  chips.write_text(chips.read_text() + '\nfrom sdd_jax.classification import step as _c\n')
  optim = copy / 'train' / 'optim.py'
  optim.write_text(optim.read_text() + '\nfrom sdd_jax.aot import report as _r\n')
  found = violations(import_graph(tmp_path), _modules(tmp_path))
  assert 'sdd_jax.translation.step (translation) imports sdd_jax.classification.step ' \
         '(classification)' in found['tasks']
  assert 'sdd_jax.train.keys (shared) imports sdd_jax.translation.step' in found['shared']
  assert any('sdd_jax.train.keys' in c and 'sdd_jax.translation.step' in c
             for c in found['cycles'])
  assert found['entry_packages'] == ['sdd_jax.aot.chips (entry package) imports '
                                     'sdd_jax.classification.step (classification)']
  assert 'sdd_jax.train.optim (shared) imports sdd_jax.aot.report' in found['shared']
