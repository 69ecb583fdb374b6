"""The prose stays true to the tree: every repository path and every `python -m sdd_jax...`
module that README.md, docs/*.md, the configs' docstrings and the entry points name exists,
and every relative link of the docs resolves (to a file, and to a heading where it names one).

Paths are the ones rooted at a top folder (`sdd_jax/...`, `tests/...`, `configs/...`,
`benchmarks/...`, `docs/...`), files or folders, with `{a,b}` expanded, and the modules named
from a package of `sdd_jax` (`workdir/claim.py` is `sdd_jax/workdir/claim.py`); templates
holding `<name>` and the placeholders in `PLACEHOLDERS` are what a reader fills in, not files.
"""
import glob
import itertools
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = ('sdd_jax', 'tests', 'configs', 'benchmarks', 'docs')
PATH = re.compile(r'(?<![\w./~-])((?:%s)/(?:[\w.<>*-]|/|\{[^}\s]*\})*)' % '|'.join(TOP))
MODULE = re.compile(r'(?<![\w.])-m\s+(sdd_jax(?:\.\w+)*)')
LINK = re.compile(r'\]\(([^)\s]+)\)')
# Inside the package, the docs' tables name modules by their package: `workdir/claim.py`.
IN_PACKAGE = re.compile(r'(?<![\w./-])((\w+)/[\w/]*\w\.py)\b')
# Named as examples of what a reader writes: a config of their own (`configs/X.py[:arg]`),
# and where docs/method_contract.md's test-only method would go to become a real one.
PLACEHOLDERS = {'configs/X.py', 'configs/x.py', 'sdd_jax/methods/adapter.py'}


def _texts():
  """{path relative to ROOT: text} of the prose a reader follows."""
  names = ['README.md', 'train.py', 'evaluate.py']
  names += sorted(os.path.relpath(p, ROOT) for pattern in ('docs/*.md', 'configs/*.py')
                  for p in glob.glob(os.path.join(ROOT, pattern)))
  texts = {}
  for name in names:
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
      texts[name] = f.read()
  return texts


def _expand(path):
  """'configs/iwslt15_{de_en,en_de}_pskd.py' -> both names."""
  parts = re.split(r'\{([^}]*)\}', path)
  choices = [[part] if i % 2 == 0 else part.split(',') for i, part in enumerate(parts)]
  return [''.join(pick) for pick in itertools.product(*choices)]


def named_paths(texts):
  """{repository path: the first file naming it}, templates and placeholders left out."""
  found = {}
  for name, text in texts.items():
    for match in PATH.findall(text):
      for path in _expand(match.rstrip('.')):
        if '<' not in path and '>' not in path and '*' not in path and path not in PLACEHOLDERS:
          found.setdefault(path, name)
    for path, package in IN_PACKAGE.findall(text):
      if os.path.isdir(os.path.join(ROOT, 'sdd_jax', package)) and package not in TOP:
        found.setdefault(f'sdd_jax/{path}', name)
  return found


def named_modules(texts):
  """{dotted module run with `-m`: the first file naming it}."""
  found = {}
  for name, text in texts.items():
    for module in MODULE.findall(text):
      found.setdefault(module, name)
  return found


def _runnable(module: str) -> bool:
  """`python -m module` finds something to run: a module file, or a package's __main__."""
  base = os.path.join(ROOT, *module.split('.'))
  return os.path.isfile(base + '.py') or os.path.isfile(os.path.join(base, '__main__.py'))


def _slug(heading: str) -> str:
  """GitHub's anchor of a markdown heading."""
  text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
  return text.replace(' ', '-')


def _anchors(path: str):
  with open(path, encoding='utf-8') as f:
    return {_slug(h) for h in re.findall(r'^#{1,6} (.+)$', f.read(), re.M)}


def broken_links(texts):
  """['file: link (why)'] for every relative markdown link that does not resolve."""
  broken = []
  for name, text in texts.items():
    if not name.endswith('.md'):
      continue
    for link in LINK.findall(text):
      if re.match(r'[a-z]+:', link):  # https:, mailto:
        continue
      target, _, anchor = link.partition('#')
      path = os.path.normpath(os.path.join(ROOT, os.path.dirname(name), target)) if target \
          else os.path.join(ROOT, name)
      if not os.path.exists(path):
        broken.append(f'{name}: {link} (no such file)')
      elif anchor and anchor not in _anchors(path):
        broken.append(f'{name}: {link} (no such heading)')
  return broken


def test_every_path_and_module_named_in_the_docs_exists():
  texts = _texts()
  paths, modules = named_paths(texts), named_modules(texts)
  # The scan sees the docs' commands and paths (it cannot pass by finding nothing).
  assert {'sdd_jax.demo', 'sdd_jax.report', 'sdd_jax.export', 'sdd_jax.sweep',
          'sdd_jax.translation.demo', 'sdd_jax.translation.spm',
          'sdd_jax.detection.finetune'} <= set(modules)
  assert {'configs/iwslt15_pskd.py',
          'sdd_jax/workdir/paths.py', 'sdd_jax/workdir/claim.py',
          'tests/architecture_test.py'} <= set(paths)
  assert len(paths) >= 50
  missing = {path: source for path, source in paths.items()
             if not os.path.exists(os.path.join(ROOT, path))}
  assert not missing, f'named but not in the repository: {missing}'
  not_runnable = {module: source for module, source in modules.items() if not _runnable(module)}
  assert not not_runnable, f'python -m finds nothing to run: {not_runnable}'


def test_every_link_of_the_docs_resolves():
  texts = _texts()
  assert not broken_links(texts)
  readme_links = set(LINK.findall(texts['README.md']))
  assert {'docs/README.md', 'docs/architecture.md'} <= readme_links
  # The index lists every page of docs/.
  index = set(LINK.findall(texts['docs/README.md']))
  pages = {os.path.basename(name) for name in texts
           if name.startswith('docs/') and name != 'docs/README.md'}
  assert pages - index == set(), f'pages the index does not list: {pages - index}'


def test_the_scan_sees_a_wrong_path_a_wrong_module_and_a_broken_link():
  texts = {'docs/x.md': 'see `sdd_jax/workdir/path.py`, `tests/{workdir,nowhere}/`, '
                        '`workdir/claims.py` (not `utils/metric.py`) and\n'
                        '`python -m sdd_jax.reports`; [t](training.md#resumin), [u](gone.md)',
           'configs/y.py': '"""python -m\n    sdd_jax.translation.demo; configs/<x>.py"""'}
  paths = named_paths(texts)
  assert sorted(paths) == ['sdd_jax/workdir/claims.py', 'sdd_jax/workdir/path.py',
                          'tests/nowhere/', 'tests/workdir/']
  assert sorted(named_modules(texts)) == ['sdd_jax.reports', 'sdd_jax.translation.demo']
  assert not _runnable('sdd_jax.reports') and _runnable('sdd_jax.report')
  assert broken_links(texts) == ['docs/x.md: training.md#resumin (no such heading)',
                                 'docs/x.md: gone.md (no such file)']


def test_the_architecture_map_names_every_package_and_top_level_module():
  """docs/architecture.md's tables hold one row per package and per top-level module of
  `sdd_jax/` (`| \\`config/\\` | ...`, `| \\`tasks.py\\` | ...`), no more and no fewer."""
  with open(os.path.join(ROOT, 'docs', 'architecture.md'), encoding='utf-8') as f:
    rows = set(re.findall(r'^\| `(\w+/|\w+\.py)` \|', f.read(), re.M))
  package = os.path.join(ROOT, 'sdd_jax')
  tree = {name + '/' for name in os.listdir(package)
          if os.path.isfile(os.path.join(package, name, '__init__.py'))}
  tree |= {name for name in os.listdir(package) if name.endswith('.py') and name != '__init__.py'}
  assert {'config/', 'workdir/', 'train/', 'classification/', 'tasks.py'} <= tree
  assert rows == tree, (f'in the tree, not on the map: {sorted(tree - rows)}; '
                        f'on the map, not in the tree: {sorted(rows - tree)}')
