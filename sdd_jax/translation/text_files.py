"""The split files of a data folder and their contract: `{train,valid,test}.{src,tgt}`, one
sentence per line, line i of `.src` translated by line i of `.tgt`.

Every breach is a one-line `DataError` naming the file (and the line where there is one) and
what to change: a missing or unreadable file, bytes that are not UTF-8, an empty file, unequal
line counts (`read_split`), a blank line (`check_no_blank_line`), and a sentence longer than
the model's positions (`check_fits_the_model`: `corpus.py` applies it to the valid and test
splits, whose every sentence is decoded; training drops pairs longer than `data.max_len`
instead, `text_data.py`). `corpus.create_corpus` runs them all before the workdir is claimed.
"""
import os
from typing import List, Tuple

from etils import epath

from sdd_jax.errors import DataError


def _read_lines(file: epath.Path) -> List[str]:
  """The file's lines without their line ends ('\\n' or '\\r\\n'). DataError (one line, naming
  the file) if it is missing, unreadable, not UTF-8 (with the line number) or empty."""
  if not file.exists():
    raise DataError(f'no file {file}: put the sentences there, one per line (a data folder '
                    f'holds {{train,valid,test}}.{{src,tgt}}, line i of .tgt translating line i '
                    f'of .src)')
  try:
    data = file.read_bytes()
  except OSError as e:
    raise DataError(f'{file} cannot be read ({e.strerror or e}); make it a readable '
                    f'file') from None
  try:
    text = data.decode('utf-8')
  except UnicodeDecodeError as e:
    line = data.count(b'\n', 0, e.start) + 1
    raise DataError(f'{file} line {line} is not UTF-8 (byte 0x{data[e.start]:02x}); convert the '
                    f'file to UTF-8, e.g. iconv -f latin1 -t utf-8 if it is Latin-1') from None
  if not text.strip():
    raise DataError(f'{file} is empty; put the sentences there, one per line')
  lines = text.split('\n')
  if lines and not lines[-1]:
    lines.pop()  # the newline that ends the last line
  return [line[:-1] if line.endswith('\r') else line for line in lines]


def read_split(path, split: str) -> Tuple[List[str], List[str]]:
  """-> (source lines, target lines) of `<path>/<split>.src` and `<split>.tgt`.

  Raises DataError (one line, naming the file) if a file is missing, unreadable, not UTF-8 or
  empty, or their line counts differ.
  """
  folder = epath.Path(path)
  src_file, tgt_file = folder / f'{split}.src', folder / f'{split}.tgt'
  src, tgt = _read_lines(src_file), _read_lines(tgt_file)
  if len(src) != len(tgt):
    raise DataError(f'{src_file} has {len(src)} lines but {tgt_file} has {len(tgt)}; a parallel '
                    f'split needs one target line per source line')
  return src, tgt


def check_no_blank_line(path: str, split: str, src_lines, tgt_lines) -> None:
  """DataError naming the first blank line of the split's files: every line is a sentence."""
  for number, pair in enumerate(zip(src_lines, tgt_lines), 1):
    for side, line in zip(('src', 'tgt'), pair):
      if not line.strip():
        raise DataError(f'{os.path.join(path, f"{split}.{side}")} line {number} is empty; every '
                        f'line holds a sentence: delete line {number} of both {split}.src and '
                        f'{split}.tgt, or fill it in')


def check_fits_the_model(path: str, split: str, ids, max_len: int) -> None:
  """DataError if an evaluation sentence (+ EOS or BOS) is longer than the model's positions
  (`config.model.max_len`), checked here, before training, rather than when it is decoded."""
  for side, sentences in zip(('src', 'tgt'), ids):
    lengths = [len(x) + 1 for x in sentences]
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[longest] > max_len:
      raise DataError(
          f'{os.path.join(path, f"{split}.{side}")} line {longest + 1} has {lengths[longest] - 1} '
          f'tokens, more than model.max_len {max_len} allows ({max_len - 1} + EOS); shorten or '
          f'delete line {longest + 1} of both {split}.src and {split}.tgt, or raise '
          f'config.model.max_len')
