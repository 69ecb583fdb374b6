"""The installable package (pyproject.toml): its dependency lists equal requirements*.txt, every
third-party module the code imports is declared, and the built package imports and loads a config
file by absolute path from another working folder, as train.py does."""
import ast
import glob
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from sdd_jax.config import cli as config_cli
from sdd_jax.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYPROJECT = os.path.join(ROOT, 'pyproject.toml')
CONFIG = os.path.join(ROOT, 'configs', 'cub200_resnet18.py')  # imports configs.common


def _project():
  with open(PYPROJECT, 'rb') as f:
    return tomllib.load(f)['project']


def _requirements(name):
  """The requirement lines of requirements file `name`, comments and blank lines dropped."""
  with open(os.path.join(ROOT, name)) as f:
    lines = [line.split('#', 1)[0].strip() for line in f]
  return sorted(line for line in lines if line)


def _distribution(requirement):
  """'etils[epath]>=1.7' -> 'etils' (normalised as PEP 503 does)."""
  name = re.match(r'[A-Za-z0-9._-]+', requirement).group(0)
  return re.sub(r'[-_.]+', '-', name).lower()


def test_dependencies_equal_the_requirements_files():
  project = _project()
  extras = project['optional-dependencies']
  assert sorted(project['dependencies'] + extras['test']) == _requirements('requirements.txt')
  assert sorted(extras['torch']) == _requirements('requirements-torch.txt')
  assert sorted(extras['tfds']) == _requirements('requirements-tfds.txt')
  assert sorted(extras['detection']) == _requirements('requirements-detection.txt')
  assert sorted(extras['tpu']) == _requirements('requirements-tpu.txt')
  assert extras['tpu'] == [f'jax[tpu]=={importlib.metadata.version("jax")}']  # the core's jax
  assert {'pytest', 'pytest-xdist', 'ruff'} <= {_distribution(r) for r in extras['test']}
  runtime = {_distribution(r) for r in project['dependencies']}
  assert not runtime & {'pytest', 'pytest-xdist', 'ruff', 'torch', 'tensorflow-cpu'}


DETECTION = os.path.join(ROOT, 'sdd_jax', 'detection')  # the optional extra's package
AOT = os.path.join(ROOT, 'sdd_jax', 'aot')  # the compile check: the tpu extra's libtpu
EXTRA_PACKAGES = {'detection': DETECTION, 'tpu': AOT}


def _third_party_imports(extra=None):
  """{top-level module: first file importing it} over the package (without the extras'
  packages sdd_jax/detection and sdd_jax/aot), the configs and the two entry points; with
  extra='detection' or 'tpu', over that extra's package alone. The standard library and our own
  packages left out."""
  if extra:
    files = glob.glob(os.path.join(EXTRA_PACKAGES[extra], '**', '*.py'), recursive=True)
  else:
    files = ([f for f in glob.glob(os.path.join(ROOT, 'sdd_jax', '**', '*.py'), recursive=True)
              if not any(f.startswith(p + os.sep) for p in EXTRA_PACKAGES.values())]
             + glob.glob(os.path.join(ROOT, 'configs', '*.py'))
             + [os.path.join(ROOT, 'train.py'), os.path.join(ROOT, 'evaluate.py')])
  found = {}
  for path in sorted(files):
    with open(path, encoding='utf-8') as f:
      tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module]
      else:
        continue
      for name in names:
        top = name.split('.')[0]
        if top not in sys.stdlib_module_names and top not in ('sdd_jax', 'configs'):
          found.setdefault(top, os.path.relpath(path, ROOT))
  return found


def _undeclared(imports, requirements):
  declared = {_distribution(r) for r in requirements}
  providers = importlib.metadata.packages_distributions()
  return {module: (where, providers.get(module)) for module, where in imports.items()
          if not {_distribution(d) for d in providers.get(module, [module])} & declared}


def test_every_imported_distribution_is_declared():
  imports = _third_party_imports()
  assert {'jax', 'flax', 'etils', 'ml_collections'} <= set(imports)  # the scan sees imports
  assert not {'torch', 'torchvision', 'pycocotools'} & set(imports)  # the core needs no torch
  undeclared = _undeclared(imports, _project()['dependencies'])
  assert not undeclared, f'imported but not in pyproject dependencies: {undeclared}'


def test_the_detection_package_imports_only_what_its_extra_declares():
  imports = _third_party_imports('detection')
  assert {'torch', 'torchvision', 'pycocotools'} <= set(imports)
  extra = _project()['optional-dependencies']['detection']
  undeclared = _undeclared(imports, _project()['dependencies'] + extra)
  assert not undeclared, f'imported but not in dependencies or the detection extra: {undeclared}'


def test_the_compile_check_imports_only_what_the_tpu_extra_declares():
  imports = _third_party_imports('tpu')
  assert {'jax', 'libtpu'} <= set(imports)
  extra = _project()['optional-dependencies']['tpu']
  # jax[tpu] declares libtpu: the requirements of jax's own 'tpu' extra count as declared
  pulled = [r.split(';')[0] for r in importlib.metadata.requires('jax') or []
            if re.search(r'extra\s*==\s*"tpu"', r)]
  assert 'libtpu' in {_distribution(r) for r in pulled}
  undeclared = _undeclared(imports, _project()['dependencies'] + extra + pulled)
  assert not undeclared, f'imported but not in dependencies or the tpu extra: {undeclared}'


def test_a_config_without_the_configs_package_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'configs', None)  # as where the repository is not installed
  monkeypatch.delitem(sys.modules, 'configs.common', raising=False)
  with pytest.raises(UserError, match=r'cub200_resnet18.py: the file imports the configs '
                     r'package, which this Python cannot find; install the repository '
                     r'\(pip install -e \. in its folder\)'):
    config_cli.load_file(CONFIG + ':smoke')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
  """The wheel pip builds from pyproject.toml (no index, no build isolation: offline), unpacked:
  what `pip install .` puts in site-packages."""
  root = tmp_path_factory.mktemp('wheel')
  source = root / 'source'  # a copy: setuptools builds in the tree (build/, *.egg-info)
  ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
  for name in ('sdd_jax', 'configs'):
    shutil.copytree(os.path.join(ROOT, name), source / name, ignore=ignore)
  for name in ('pyproject.toml', 'README.md'):
    shutil.copy(os.path.join(ROOT, name), source / name)
  subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-index',
                  '--no-build-isolation', '--wheel-dir', str(root / 'dist'), str(source)],
                 check=True, capture_output=True, cwd=root)
  wheel, = glob.glob(str(root / 'dist' / '*.whl'))
  with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    archive.extractall(root / 'site')
  return root, names


def test_the_wheel_holds_the_package_and_the_configs_only(installed):
  _, names = installed
  tops = {name.split('/')[0] for name in names if not name.split('/')[0].endswith('.dist-info')}
  assert tops == {'sdd_jax', 'configs'}
  for sub in ('sdd_jax/methods/__init__.py', 'sdd_jax/models/__init__.py',
              'sdd_jax/evaluators/__init__.py', 'sdd_jax/data/__init__.py',
              'configs/__init__.py', 'configs/common.py'):
    assert sub in names


def test_installed_package_loads_a_config_by_absolute_path_from_another_folder(installed):
  root, _ = installed
  elsewhere = root / 'elsewhere'
  elsewhere.mkdir()
  code = ('import json, sys, sdd_jax, configs\n'
          'from sdd_jax.config import cli as config_cli\n'
          f'config = config_cli.load(["x", "--config", {CONFIG + ":smoke"!r}, '
          '"--config.seed=7"])\n'
          'print(json.dumps(dict(sdd_jax=sdd_jax.__file__, configs=configs.__file__, '
          'common=sys.modules["configs.common"].__file__, seed=config.seed, '
          'data=config.data.name, methods=sorted(config.methods))))\n')
  env = dict(os.environ, PYTHONPATH=str(root / 'site'))  # only the installed copy, not ROOT
  result = subprocess.run([sys.executable, '-c', code], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  got = json.loads(result.stdout.strip().splitlines()[-1])
  site = str(root / 'site')
  for key in ('sdd_jax', 'configs', 'common'):
    assert got[key].startswith(site), (key, got[key])
  # The file's docstring: caltech_birds2011 with cross-entropy alone (no `:method=` token).
  assert (got['seed'], got['data'], got['methods']) == (7, 'caltech_birds2011', [])


def test_train_py_loads_a_config_by_absolute_path_from_another_folder(tmp_path):
  """`python /abs/train.py --config /abs/configs/x.py` from elsewhere: the config loads (the
  overrides' validation then refuses lr = -1 in one line, before any workdir is made)."""
  workdir = tmp_path / 'w'
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'train.py'), '--config', CONFIG + ':smoke,seed=3',
       '--workdir', str(workdir), '--config.optim.lr=-1'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert (result.returncode, result.stderr.strip()) == (
      1, 'error: config.optim.lr: must be > 0, got -1.0 (set --config.optim.lr=...)')
  assert not workdir.exists()


def test_ci_runs_readme_set_up_and_test_commands():
  with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
    readme = f.read()
  with open(os.path.join(ROOT, '.ci', 'run'), encoding='utf-8') as f:
    ci = [line.strip() for line in f if line.strip() and not line.startswith('#')]
  blocks = re.findall(r'```bash\n\s*(.*?)\n\s*```', readme.split('## The library')[0], re.S)
  set_up, test = blocks[:2]
  install = re.search(r'pip install (-e "\.\[test\]")', set_up).group(1)
  assert f'.venv/bin/python -m pip install --quiet {install}' in ci
  assert test == '.venv/bin/ruff check . && .venv/bin/python -m pytest -q -n 2 tests'
  assert ci[-1] == test


def _repository_texts():
  """{path: text} of the code and prose a user of the repository reads: README.md and the docs/
  pages it leads to, the entry points, and every .py and .md file of the code folders."""
  paths = [os.path.join(ROOT, name) for name in ('README.md', 'train.py', 'evaluate.py')]
  paths += glob.glob(os.path.join(ROOT, 'docs', '*.md'))
  for folder in ('sdd_jax', 'configs', 'tests', 'benchmarks'):
    for ext in ('py', 'md'):
      paths += glob.glob(os.path.join(ROOT, folder, '**', f'*.{ext}'), recursive=True)
  texts = {}
  for path in paths:
    with open(path, encoding='utf-8') as f:
      texts[os.path.relpath(path, ROOT)] = f.read()
  return texts


def _evaluation_sections():
  """The section numbers docs/evaluation.md defines: headings `§A` / `§A.B`, and the numbered
  items `B.` of a heading `§A` as `A.B`."""
  with open(os.path.join(ROOT, 'docs', 'evaluation.md'), encoding='utf-8') as f:
    text = f.read()
  sections, current = set(), None
  for line in text.splitlines():
    heading = re.match(r'#{2,3} §(\d+(?:\.\d+)?) ', line)
    if heading:
      sections.add(heading.group(1))
      current = heading.group(1)
    item = re.match(r'(\d+)\. ', line)
    if item and current is not None and '.' not in current:
      sections.add(f'{current}.{item.group(1)}')
  return sections


def test_citations_name_the_repository_docs_and_sections_that_exist():
  texts = _repository_texts()
  stale = sorted(f'{path}: {match}' for path, text in texts.items()
                 if not path.endswith('packaging_test.py')
                 for match in re.findall(r'\S*(?:methods_spec|eval_spec|shared/STYLE)\S*', text))
  assert not stale, f'cite docs/methods.md or docs/evaluation.md instead: {stale}'
  sections = _evaluation_sections()
  assert {'0.5', '0.6', '2', '5.1', '5.4', '8.3'} <= sections  # the parser sees the doc's parts
  cited = {}
  for path, text in texts.items():
    for group in re.findall(r'docs/evaluation\.md((?:,? §[\d.]+)+)', text):
      for number in re.findall(r'§(\d+(?:\.\d+)?)', group):
        cited.setdefault(number, path)
  assert len(cited) >= 10
  missing = {number: path for number, path in cited.items() if number not in sections}
  assert not missing, f'docs/evaluation.md has no such section: {missing}'
  with open(os.path.join(ROOT, 'docs', 'methods.md'), encoding='utf-8') as f:
    headings = set(re.findall(r'^#{2,3} (.+)$', f.read(), re.M))
  for path, text in texts.items():
    for name in re.findall(r'docs/methods\.md "([^"]+)"', text):
      assert name in headings, (path, name)
