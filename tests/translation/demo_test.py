"""The demo's BLEU table: mean and sample std over seeds, per arm."""
from sdd_jax.translation import demo


def test_table_gives_mean_and_sample_std_per_arm():
  rows = {'LS': [{'valid/bleu': 80.0, 'test/bleu': 90.0, 'test/bleu_tok': 91.0,
                  'test/nll': 0.5},
                 {'valid/bleu': 82.0, 'test/bleu': 94.0, 'test/bleu_tok': 93.0,
                  'test/nll': 0.7}],
          'PS-KD': [{'valid/bleu': 81.0, 'test/bleu': 91.0, 'test/bleu_tok': 92.0,
                     'test/nll': 0.4}] * 2}
  lines = demo.table(rows).splitlines()
  assert lines[0] == ('| method (2 seeds) | valid BLEU | test BLEU | test BLEU (tok) | '
                      'test NLL |')
  assert lines[2] == '| LS | 81.00 ± 1.41 | 92.00 ± 2.83 | 92.00 ± 1.41 | 0.60 ± 0.14 |'
  assert lines[3] == '| PS-KD | 81.00 ± 0.00 | 91.00 ± 0.00 | 92.00 ± 0.00 | 0.40 ± 0.00 |'
