"""Each group's configuration in the report: the fields in which the groups differ (what a
sweep or an override set apart), one row per group, and the fields they all share, from each
group's `config.json` (its method sections as the run resolved them: every hyper-parameter,
weights included). `seed` is left out: it is what a group varies."""
import json
from typing import Any, Callable, Dict, List, Sequence

from sdd_jax import methods
from sdd_jax.report.cells import DASH, markdown_table
from sdd_jax.report.runs import Group


def flat(config: Dict[str, Any], prefix: str = '') -> Dict[str, str]:
  """{'optim.lr': '0.1', 'methods.sd_dropout.weight': '1.0', ...} (JSON texts), no top `seed`;
  an empty section is one field ('methods': '{}')."""
  out = {}
  for key, value in config.items():
    if isinstance(value, dict) and value:
      out.update(flat(value, f'{prefix}{key}.'))
    elif key != 'seed' or prefix:
      out[prefix + key] = json.dumps(value, sort_keys=True)
  return out


def group_fields(g: Group) -> Dict[str, str]:
  """The flattened config of the group's first run, its method sections resolved."""
  return flat(methods.resolve_config(g.runs[0].config))


def section(groups: Sequence[Group], name: Callable[[Group], str]) -> List[str]:
  """Markdown lines: the table of differing fields and the shared ones; [] without groups."""
  if not groups:
    return []
  fields = [group_fields(g) for g in groups]
  keys = set().union(*fields)
  differ = sorted(k for k in keys if len({f.get(k) for f in fields}) > 1)
  shared = sorted(keys - set(differ))
  lines = ['## Configurations', '',
           'Fields that differ between the groups (– : not in that config), from each group\'s '
           'config.json; every other field is shared and listed below.', '']
  if differ:
    rows = [[name(g), str(len(g.runs))] + [f.get(k, DASH) for k in differ]
            for g, f in zip(groups, fields)]
    lines += [markdown_table(['Group', 'n'] + [f'`{k}`' for k in differ], rows), '']
  lines += ['<details><summary>Shared by every group</summary>', '',
            *(f'- `{k}` = `{fields[0][k]}`' for k in shared), '', '</details>', '']
  return lines
