"""text_files: reading a split's files (line ends, a final newline, blank lines read as they
are) and the one-line errors of its contract at the function level; the catalogue of every
breach through train.py is tests/translation/bad_inputs_test.py."""
import numpy as np
import pytest

from sdd_jax.errors import DataError
from sdd_jax.translation import text_files


def test_read_split(tmp_path):
  (tmp_path / 'valid.src').write_bytes(b'ein Haus\r\n\nzwei\n')
  (tmp_path / 'valid.tgt').write_text('a house\n\ntwo')  # no final newline
  assert text_files.read_split(tmp_path, 'valid') == (['ein Haus', '', 'zwei'],
                                                     ['a house', '', 'two'])
  (tmp_path / 'test.src').write_text('a\nb\n')
  (tmp_path / 'test.tgt').write_text('a\n')
  with pytest.raises(DataError, match=r'test\.src has 2 lines but .*test\.tgt has 1; a parallel '
                     'split needs one target line per source line'):
    text_files.read_split(tmp_path, 'test')
  with pytest.raises(DataError, match=r'no file .*train\.src: put the sentences there, one per '
                     r'line \(a data folder holds \{train,valid,test\}\.\{src,tgt\}'):
    text_files.read_split(tmp_path, 'train')


def test_the_contract_names_the_file_and_line(tmp_path):
  (tmp_path / 'test.src').write_bytes(b'eins\nzwei\ndrei \xe9t\xe9\n')
  (tmp_path / 'test.tgt').write_text('one\ntwo\nthree\n')
  with pytest.raises(DataError, match=r'test\.src line 3 is not UTF-8 \(byte 0xe9\)'):
    text_files.read_split(tmp_path, 'test')
  with pytest.raises(DataError, match=r'valid\.tgt line 2 is empty; every line holds a sentence: '
                                      r'delete line 2 of both valid.src and valid.tgt'):
    text_files.check_no_blank_line(str(tmp_path), 'valid', ['a', 'b'], ['a', ' '])
  ids = ([np.zeros(3), np.zeros(7), np.zeros(5)], [np.zeros(2)] * 3)
  text_files.check_fits_the_model(str(tmp_path), 'test', ids, 8)  # 7 + EOS fits 8
  with pytest.raises(DataError, match=r'test\.src line 2 has 7 tokens, more than model.max_len 7 '
                                      r'allows \(6 \+ EOS\)'):
    text_files.check_fits_the_model(str(tmp_path), 'test', ids, 7)
