"""Test support shared by the tests: the tiny training config, dotted overrides, byte snapshots,
strict JSON and the metrics.jsonl of a run."""
import hashlib
import json
import os

from configs import common


def tiny_config(sd_dropout: bool = False):
  """Smoke CE (or SD-Dropout) on 64 synthetic 16x16 images, batch 16: 4 steps an epoch, 2 epochs
  (callers shorten it), no learning-rate boundary."""
  config = common.recipe()
  if sd_dropout:
    config.methods.sd_dropout = dict(common.SD_DROPOUT)
  common.smoke(config)
  config.data.synthetic_shape = (16, 16, 3)
  config.data.image_size = 16
  config.data.crop_padding = 2
  config.optim.lr_boundaries = ()
  return config


def with_overrides(config, overrides):
  """`config` with each dotted `{'optim.lr': 0.1}` key set, as `--config.optim.lr=0.1` would."""
  for key, value in overrides.items():
    target = config
    *path, last = key.split('.')
    for part in path:
      target = target[part]
    target[last] = value
  return config


def snapshot(root, folders: bool = False):
  """{relative path: sha256} of every file under `root` (and 'dir' for each folder)."""
  result = {}
  for folder, dirs, files in os.walk(root):
    if folders:
      for name in dirs:
        result[os.path.relpath(os.path.join(folder, name), root) + '/'] = 'dir'
    for name in files:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        result[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
  return result


def strict_json_text(text: str, where):
  """The JSON in `text` (from `where`); AssertionError if it holds NaN or Infinity (not strict
  JSON, RFC 8259)."""
  def refuse(token):
    raise AssertionError(f'{where} holds {token}: not strict JSON')
  return json.loads(text, parse_constant=refuse)


def strict_json(path):
  """The JSON in `path`; AssertionError if it holds NaN or Infinity (not strict JSON)."""
  with open(path, encoding='utf-8') as f:
    return strict_json_text(f.read(), path)


def train_lines(workdir) -> int:
  """How many training log points the workdir's metrics.jsonl holds so far (0 before it
  exists): what a test watching a run in a subprocess waits for."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum('train/loss' in line for line in f)


def read_jsonl(path):
  """The records of a JSON-lines file (a local path or a gs:// URI)."""
  from etils import epath  # pylint: disable=import-outside-toplevel
  text = epath.Path(path).read_text()
  return [json.loads(line) for line in text.splitlines() if line.strip()]
