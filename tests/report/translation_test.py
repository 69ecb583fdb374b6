"""sdd_jax.report's translation table over hand-made workdirs with hand-worked numbers."""
import json
import os

from sdd_jax import report
from sdd_jax.report import translation as report_translation

LS = {'label_smoothing': {'epsilon': 0.1}}
PSKD = {'label_smoothing': {'epsilon': 0.1}, 'ps_kd': {'alpha': 0.8}}


def write_translation_run(root, name, *, seed, source, target, methods, bleu=None,
                          bleu_tok=None):
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  config = {'task': 'translation', 'seed': seed, 'methods': methods,
            'data': {'source': 'files', 'path': f'/data/iwslt15_{source}_{target}',
                     'source_lang': source, 'target_lang': target},
            'model': {'d_model': 512, 'num_heads': 4}}
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config, f)
  if bleu is not None:  # a run still training has no summary.json
    with open(os.path.join(workdir, 'summary.json'), 'w') as f:
      json.dump({'test/bleu': bleu, 'test/bleu_tok': bleu_tok, 'valid/bleu': bleu + 1,
                 'steps': 100, 'epochs': 2}, f)


def write_image_run(root, name, top1):
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'seed': 0, 'data': {'source': 'tfds', 'name': 'cifar100'},
               'model': {'name': 'resnet18_cifar', 'head_hidden': []}, 'methods': {}}, f)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({'test/top1': top1, 'steps': 10}, f)


def make_runs(root):
  for seed, (bleu, tok) in enumerate(((33.0, 34.0), (34.0, 35.0), (35.5, 36.5))):
    write_translation_run(root, f'de_en/ls/s{seed}', seed=seed, source='de', target='en',
                          methods=LS, bleu=bleu, bleu_tok=tok)
  for seed, (bleu, tok) in enumerate(((35.0, 36.0), (35.2, 36.4), (34.8, 36.2))):
    write_translation_run(root, f'de_en/pskd/s{seed}', seed=seed, source='de', target='en',
                          methods=PSKD, bleu=bleu, bleu_tok=tok)
  for seed, (bleu, tok) in enumerate(((28.0, 29.0), (28.5, 29.5))):
    write_translation_run(root, f'en_de/ls/s{seed}', seed=seed, source='en', target='de',
                          methods=LS, bleu=bleu, bleu_tok=tok)
  write_translation_run(root, 'en_de/pskd/s0', seed=0, source='en', target='de',
                        methods=PSKD, bleu=29.1, bleu_tok=29.0)
  write_translation_run(root, 'en_de/pskd/s1', seed=1, source='en', target='de',
                        methods=PSKD)  # still training: no number
  write_image_run(root, 'cifar/ce', 74.0)


# de->en LS: sacreBLEU mean(33, 34, 35.5) = 34.1667, squared deviations 1.3611 + 0.0278 +
# 1.7778 = 3.1667, / 2 = 1.5833, sqrt 1.2583; tokenised: the same values + 1: 35.17 ± 1.26.
# de->en PS-KD: 35.0, std sqrt((0 + 0.04 + 0.04) / 2) = 0.20; tokenised 36.2 ± 0.20.
# en->de LS (2 seeds): 28.25, std sqrt(2 * 0.0625 / 1) = 0.3536; tokenised 29.25 ± 0.35.
# en->de PS-KD: one finished seed: 29.10, tokenised 29.00 (LS wins that column).
# Most cells have 3 seeds: (n=k) marks the others. No bold: de->en PS-KD's +0.83 has Welch's
# t = 0.83 / sqrt(1.5833/3 + 0.04/3) = 1.13 (p > 0.3); en->de has a one-seed cell.
TABLE = """\
| Method | de→en sacreBLEU | de→en tok. BLEU | de→en paper | en→de sacreBLEU | en→de tok. BLEU \
| en→de paper |
|---|---|---|---|---|---|---|
| LS baseline | 34.17 ± 1.26 | 35.17 ± 1.26 | – | 28.25 ± 0.35 (n=2) | 29.25 ± 0.35 (n=2) \
| – |
| PS-KD (on LS) | 35.00 ± 0.20 | 36.20 ± 0.20 | 36.2 | 29.10 (n=1) | 29.00 (n=1) \
| 30.0 |"""


def test_translation_table_by_hand(tmp_path):
  root = str(tmp_path / 'runs')
  make_runs(root)
  runs = report.load_runs([root])
  translation = [r for r in runs if report_translation.is_translation(r)]
  assert len(translation) == 10
  groups = report.group_seeds(translation)
  assert report_translation.translation_table(groups) == TABLE


def test_report_puts_translation_runs_in_their_own_table_only(tmp_path):
  root = str(tmp_path / 'runs')
  make_runs(root)
  out = str(tmp_path / 'report.md')
  assert report.main([root, '--out', out]) == 0
  with open(out, encoding='utf-8') as f:
    text = f.read()
  assert '## Translation: BLEU on the test split (PS-KD, IWSLT15)' in text
  assert TABLE in text
  table1 = text.split('## Table 1')[1].split('\n## ')[0]
  assert 'Cross-Entropy | 74.00 (n=1)' in table1
  assert 'Label Smoothing' not in table1 and 'toy' not in table1 and 'files:' not in table1
  assert '- Translation de→en, PS-KD (on LS), n=3: [seed 0]' in text
  assert '- Translation en→de, PS-KD (on LS), n=2: ' in text
  assert '11 runs in 5 groups' in text


def test_translation_only_report_has_no_image_tables(tmp_path):
  root = str(tmp_path / 'runs')
  write_translation_run(root, 'ls', seed=0, source='de', target='en', methods=LS, bleu=30.0,
                        bleu_tok=31.0)
  text = report.render(report.load_runs([root]), str(tmp_path))
  assert '## Table 1' not in text
  assert '| LS baseline | 30.00 (n=1) | 31.00 (n=1) | – |' in text
