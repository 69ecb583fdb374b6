r"""Paper-style tables over many runs: `python -m sdd_jax.report DIR... [--out report.md]
[--per_seed]`.

Every workdir (a folder holding `config.json`) at or below each DIR is read with its
`summary.json` and `evals/<name>/results.json`; runs whose configs differ only by `seed` are one
group (`runs.py`), and a cell is the mean ± sample std (ddof=1) over its seeds; the best of a
comparison is bold only where Welch's t-test finds it better than each other cell, two-sided
p < 0.05, never with fewer than 2 seeds (`cells.py`). A +SD-Dropout cell states SD-Dropout's
weight in its runs, `(λ=1)` alone and `(λ=0.1)` beside another method, read from their configs.

Sections (each only where some run has its numbers):
- Table 1: top-1 of each method (CE = no method besides `sd_dropout`) per data set, Base and
  +SD-Dropout with the gain, in the paper's order (CE, CS-KD, DDGSD, BYOT, DML, LS, then the
  others), and the same for top-5 where runs have `test/top5`; DML's second network and ensemble in a table of their own; Table 3 (ImageNet
  Acc@1 / Acc@5 per method).
- Table 4: COCO detection mAP / mAP@0.5 per backbone pre-training and schedule (0.5x, 1x)
  beside the paper's, from detection workdirs (`python -m sdd_jax.detection.finetune`: a
  folder whose `results.json` has kind "detection"; `detection.py`).
- Evaluations per data set and method, Base vs +SD-Dropout: calibration (Table 2; the
  selective-prediction and proper scores, and ECE / NLL before and after temperature scaling
  with T*, where runs have them: `calibration.py`), FGSM
  (Table 5), CIFAR-100-C mCA (Table 6), and per data set and method Table 6's accuracy per
  corruption and Table 7's ODIN / MSP metrics per OOD set with their average.
- Ablations wherever the field varies: KL direction with its Base (Table 9), backbone
  (Table 10), standard dropout (Table 11), dropout position (Table 12), head hidden layers
  (Table 13), weight × rate (Table 14); each is a `pivot` by one or two fields with the other
  ablated fields at the paper's values.
- The sensitivity study: metrics per pooled dimension D and weight (`sensitivity.py`), only
  where the runs hold two values of D or two weights.
- The KL-direction probe (Table 8, Figure 4), links to the reliability diagrams, with
  `--per_seed` every run's values (`per_seed.py`), each group's configuration (the fields in
  which the groups differ, and the shared ones: `configs.py`), and the workdirs behind every
  group.
- Translation (`config.task == 'translation'`, issue 16): test BLEU (sacreBLEU and tokenised)
  of the LS baseline and PS-KD per direction beside the paper's figures (`translation.py`);
  translation runs stay out of the image tables.

Tables 1-7 use only runs at the paper's settings (`runs.REFERENCE`: both directions,
position 4, rate 0.5, no hidden head layer) and leave out Table 11's standard-dropout
baselines. Written to `--out` (default: `report.md` in the current folder); links are relative
to it.

A run whose files cannot be read (`files.py`: a truncated or garbage config.json,
summary.json or results.json) is left out with one line on stderr naming it, the file and the
problem; a bad line of metrics.jsonl skips only that line (one stderr line per file). Exit
status: 0 when some run was tabulated (even with runs left out), 1 when none was (no workdir,
or none readable: the report is not written).

Modules: `files` (reading a run's files), `runs` (runs, seed groups, fields, labels), `cells`
(cells, the bold's test, the markdown table), `tables` (the paper's tables), `calibration`
(Table 2 and the new calibration columns), `detection` (Table 4), `sections` (evaluations and
ablations), `per_seed` (per-seed values), `configs` (each group's configuration),
`probe` (Table 8, Figure 4), `sensitivity` (weight × D), `translation` (the translation table),
`render` (the whole markdown), `cli` (`main`).
"""
# The API lives here too (tests and scripts use `report.load_runs`, `report.render`, ...).
from sdd_jax.report.cli import main
from sdd_jax.report.render import reliability_links, render, runs_list
from sdd_jax.report.runs import (BASE, FEATURE_DROPOUT, PLUS_SDD, REFERENCE, Group, Run,
                                 at_reference, group_seeds, label, load_runs, metric_keys,
                                 order_key)
from sdd_jax.report.sections import (ABLATIONS, CORRUPTION_LABELS, CORRUPTION_ROWS, OOD_METRICS,
                                     ablation_sections, evaluation_sections)
from sdd_jax.report.cells import STD_NOTE, Cell, markdown, markdown_table
from sdd_jax.report.tables import (base_vs_sdd, dml_table, in_main_tables, pair_grid,
                                   pivot, table1, table3)
