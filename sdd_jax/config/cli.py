"""The config from the command line, with one-line errors: `--config FILE[:ARG]` and the
`--config.<path>=<value>` overrides, checked before absl parses the flags.

ml_collections' `config_flags` loads the file and parses the overrides while absl parses the
flags, before `main` runs, so its errors (a missing file, a syntax error, an unknown `:ARG`
token, a misspelt field, a value of the wrong type) come as tracebacks. `load(argv)` does the
same parsing first, on a private `FlagValues` with the very same `config_flags` code, and turns
every such problem into a `ConfigError` whose one line names the fix (the nearest known field
names for a misspelt one). `exit_on_error(fn, ...)` prints it as `error: ...` and exits 1.
"""
import difflib
import importlib.util
import os
import re
import sys
import traceback
from typing import Callable, List, Optional, Sequence, Tuple

from absl import flags
import ml_collections
from ml_collections import config_flags

from sdd_jax import methods as methods_lib
from sdd_jax import evaluators as evaluators_lib
from sdd_jax.config import schema as config_schema
from sdd_jax.config.fields import ConfigError
from sdd_jax.errors import UserError



def _registered(section: str) -> List[str]:
  """Names a section may hold beyond what this config sets: the registered methods and
  evaluators, a method's hyper-parameters, an evaluator's fields."""
  parts = section.split('.')
  if section == 'methods':
    return methods_lib.METHODS.names()
  if section == 'evals':
    return evaluators_lib.EVALUATORS.names()
  if len(parts) == 2 and parts[0] == 'methods' and parts[1] in methods_lib.METHODS:
    return [f.path.rsplit('.', 1)[1] for f in config_schema.method_fields(parts[1])]
  if len(parts) == 2 and parts[0] == 'evals' and parts[1] in evaluators_lib.EVALUATORS:
    return list(evaluators_lib.EVALUATORS.get(parts[1]).defaults) + list(
        evaluators_lib.sections.COMMON)  # + type, pred, split: every section's
  return []


def _nearest(name: str, known) -> str:
  close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
  return f'did you mean {" or ".join(close)}? ' if close else ''


def config_spec(argv: Sequence[str], name: str = 'config') -> Optional[str]:
  """The value of `--config` in `argv` (`--config X`, `--config=X`, `-config X`), or None."""
  for i, arg in enumerate(argv):
    match = re.fullmatch(rf'-{{1,2}}{name}(=(.*))?', arg, re.S)
    if match:
      if match.group(1) is not None:
        return match.group(2)
      return argv[i + 1] if i + 1 < len(argv) else None
  return None


def override_paths(argv: Sequence[str], name: str = 'config') -> List[Tuple[str, str]]:
  """[(path, arg)] of the overrides `--config.<path>[=<value>]` (and `--noconfig.<path>`)."""
  out = []
  for arg in argv:
    match = re.match(rf'-{{1,2}}(no)?{name}\.([^=]*)', arg)
    if match:
      out.append((match.group(2), arg))
  return out


def load_file(spec: str) -> ml_collections.ConfigDict:
  """`path[:arg]` -> `get_config(arg)` of the file, or ConfigError with one line."""
  path, colon, arg = spec.partition(':')
  if not path:
    raise ConfigError('--config is empty; give a config file, e.g. --config '
                      'configs/cifar100_resnet18_sdd.py')
  if not os.path.isfile(path):
    folder = os.path.dirname(path) or '.'
    known = (sorted(f for f in os.listdir(folder) if f.endswith('.py'))
             if os.path.isdir(folder) else [])
    hint = _nearest(os.path.basename(path), known)
    raise ConfigError(f'--config {path}: no such file; {hint}give the path of a config file '
                      f'(configs/<experiment>.py) relative to {os.getcwd()}')
  with open(path, encoding='utf-8') as f:
    source = f.read()
  try:
    compile(source, path, 'exec')
  except SyntaxError as e:
    raise ConfigError(f'--config {path}: line {e.lineno}: {e.msg}; fix the config '
                      'file') from None
  module_spec = importlib.util.spec_from_file_location('config_file', path)
  module = importlib.util.module_from_spec(module_spec)
  try:  # any other exception is a bug in the file's code and keeps its traceback
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, 'get_config', None)):
      raise ConfigError(f'--config {path}: the file defines no get_config(arg=None); every '
                        'config file returns its ConfigDict from get_config')
    config = module.get_config(arg) if colon else module.get_config()
  except ConfigError:
    raise
  except ModuleNotFoundError as e:  # `from configs import common` where configs is not installed
    if e.name != 'configs':
      raise
    raise ConfigError(f'--config {path}: the file imports the configs package, which this Python '
                      'cannot find; install the repository (pip install -e . in its folder) or '
                      'run from its root') from None
  except UserError as e:  # configs/common.apply_arg: an unknown or malformed :ARG token
    raise ConfigError(f'--config {spec}: {e}') from None
  except TypeError as e:  # ConfigDict's type safety: `config.optim.lr = 'abc'` in the file
    if not str(e).startswith('Could not override field'):
      raise
    lines = [frame.lineno for frame in traceback.extract_tb(e.__traceback__)
             if os.path.abspath(frame.filename) == os.path.abspath(path)]
    where = f'line {lines[-1]}: ' if lines else ''
    raise ConfigError(f'--config {path}: {where}{" ".join(str(e).split())}; give the field a '
                      'value of its type') from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f'--config {path}: get_config returned {type(config).__name__}, not a '
                      'ConfigDict')
  return config


def _methods_dict(known: Sequence[str], added: str) -> str:
  """The dict form's example: the config's methods with their defaults, plus `added`."""
  return '{' + ', '.join([f"'{m}': {{}}" for m in known] + [f"'{added}': {{'weight': 0.1}}"]) + '}'


def check_path(config, path: str, name: str = 'config') -> None:
  """ConfigError naming the first part of dotted `path` that `config` does not have, with the
  nearest known names."""
  node, where = config, name
  for part in path.split('.'):
    if not hasattr(node, 'keys'):
      raise ConfigError(f'--{name}.{path}: {where} is a value ({node!r}), not a section; '
                        f'set --{where}=...')
    if part not in node:
      known = sorted(node.keys())
      section = where[len(name) + 1:]  # '' at the top, then 'optim', 'methods', ...
      registered = _registered(section)
      hint = _nearest(part, set(known) | set(registered))
      if part in registered and section == 'methods':  # the dict form adds a method
        hint = (f'this config does not set methods.{part}; add it with the dict form, which '
                f'replaces the whole methods section: --config.methods="{_methods_dict(known, part)}" '
                '(fields not given take the method\'s defaults), or set it in a config file. ')
      elif part in registered:
        hint = (f'this config does not set {section}.{part} and an override cannot add it: '
                'set it in a config file. ')
      raise ConfigError(f'--{name}.{path}: no such field ({part!r}); {hint}known here: '
                        f'{", ".join(known) or "(none)"}')
    node, where = node[part], f'{where}.{part}'


def parse(argv: Sequence[str], config: ml_collections.ConfigDict,
          define: Callable[[flags.FlagValues, List[str]], flags.FlagHolder],
          name: str = 'config') -> ml_collections.ConfigDict:
  """Checks every override path of `argv` against `config`, then parses `argv` as absl will,
  with `define(flag_values, argv)` defining the config flag on a private FlagValues; -> the
  overridden config. ConfigError (one line) for any problem."""
  for path, _ in override_paths(argv, name):
    check_path(config, path, name)
  flag_values = flags.FlagValues()
  holder = define(flag_values, list(argv))
  try:
    flag_values(list(argv), known_only=True)
    return holder.value
  except (flags.Error, ValueError, TypeError, AttributeError, KeyError) as e:
    text = ' '.join(str(e).split('\n\n')[0].split())
    match = re.search(rf'--{name}\.([\w.]+)', text)
    if match and isinstance(e, flags.IllegalFlagValueError):
      path = match.group(1)
      current = config
      for part in path.split('.'):
        current = current[part]
      text += (f'; config.{path} takes {type(current).__name__} values like {current!r}'
               if current is not None else '')
    raise ConfigError(text.removeprefix('flag ')) from None


def load(argv: Sequence[str], name: str = 'config') -> ml_collections.ConfigDict:
  """The config of `argv` (`--config FILE[:ARG]` and its overrides), locked, as train.py's
  `config_flags.DEFINE_config_file` will give it; ConfigError (one line) for any problem."""
  spec = config_spec(argv, name)
  if spec is None:
    raise ConfigError(f'--{name} is required: give a config file, e.g. --{name} '
                      'configs/cifar100_resnet18_sdd.py')
  config = load_file(spec)
  return parse(argv, config, lambda fv, args: config_flags.DEFINE_config_file(
      name, None, 'Experiment config file.', flag_values=fv, lock_config=True, sys_argv=args),
               name)


def load_overrides(argv: Sequence[str], template: ml_collections.ConfigDict,
                   name: str = 'config') -> ml_collections.ConfigDict:
  """`template` with the overrides of `argv` applied, as `config_flags.DEFINE_config_dict`
  will give it (evaluate.py); ConfigError (one line) for any problem."""
  return parse(argv, template, lambda fv, args: config_flags.DEFINE_config_dict(
      name, ml_collections.ConfigDict(template.to_dict()), 'Overrides.', flag_values=fv,
      lock_config=True, sys_argv=args), name)


def exit_on_error(fn: Callable, *args, **kwargs):
  """fn(*args, **kwargs); a UserError is printed as `error: <message>` and exits 1."""
  try:
    return fn(*args, **kwargs)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
