"""Evaluating translation: decode a split, score it, write the artefacts.

`evaluate_translation(config, workdir, split)` is what the trainer runs at the end of
training (given the params and its `TranslationEvaluator`) and what `evaluate.py` runs on a
translation workdir (restoring the newest checkpoint's params):

1. translate every source line of the split with `decode.make_translate_fn` (the config's
   `evals.beam_size`, `length_penalty`, `max_len_a`, `max_len_b`; beam 1 is greedy), over the
   padded and masked eval batches of the corpus (`corpus.py`), mapping each row back to its
   line by `index`;
2. detokenise with the corpus's SentencePiece model (`Tokenizer.decode`: stops at EOS);
3. score against the raw target lines: sacreBLEU (detokenised, `bleu.sacre_bleu`, with its
   signature), tokenised BLEU (`bleu.tokenized_bleu`, whitespace tokens of the same text), and
   the teacher-forced per-token NLL over the non-PAD target positions;
4. write `<workdir>/evals/translation/<split>.hyp` (one hypothesis per line, line order) and
   merge the split's figures into `<workdir>/evals/translation/results.json` (written whole,
   through a temporary file).

`evaluate(workdir, config, overrides, names)` is the task registry's evaluation entry
(`sdd_jax.tasks`), which `evaluate.py` reaches through `sdd_jax.evaluation.evaluate_workdir`.
"""
import json
import logging
from typing import Any, Dict, List, Optional, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from sdd_jax import parallel
from sdd_jax.workdir import jsonio
from sdd_jax.workdir import paths as workdir_path
from sdd_jax.translation import bleu
from sdd_jax.translation import corpus as corpus_lib
from sdd_jax.translation import decode
from sdd_jax.translation import model as model_lib
from sdd_jax.translation import step as step_lib
from sdd_jax.translation import validation
from sdd_jax.workdir import restore as restore_lib

SPLITS = ('valid', 'test')
FOLDER = ('evals', 'translation')


class TranslationEvaluator:
  """The jitted translate and NLL functions of one model on one mesh, over a corpus's eval
  batches (built once, reused for every split and every call).

  Args:
    config: the run's config (its `evals` section sets the search).
    model: the `Transformer`.
    mesh: the data mesh (eval batch rows are a multiple of its device count).
    corpus: `corpus.Corpus` (tokenizer, eval batches with `mask` and `index`, references).
  """

  def __init__(self, config, model, mesh, corpus):
    self.corpus, self.mesh = corpus, mesh
    evals = config.evals
    self._translate_fn = decode.make_translate_fn(
        model, mesh, beam_size=evals.beam_size, length_penalty=evals.length_penalty,
        max_len_a=evals.max_len_a, max_len_b=evals.max_len_b)
    self._nll_fn = step_lib.make_nll_fn(model, mesh)

  def nll(self, params, split: str) -> float:
    """Teacher-forced NLL per non-PAD target token of `split` (nats)."""
    total, count = 0.0, 0.0
    for batch in self.corpus.eval_batches[split]:
      s, n = self._nll_fn(params, parallel.to_global(batch, self.mesh))
      total, count = total + float(s), count + float(n)
    return total / max(count, 1.0)

  def translate(self, params, split: str) -> List[str]:
    """The detokenised hypotheses of every line of `split`, in line order."""
    hyps = [''] * len(self.corpus.references[split])
    for batch in self.corpus.eval_batches[split]:
      inputs = parallel.to_global({k: batch[k] for k in ('src', 'mask', 'index')}, self.mesh)
      tokens = self._translate_fn({'params': params}, inputs['src'])
      out, mask, index = (np.asarray(multihost_utils.process_allgather(x, tiled=True))
                          for x in (tokens, inputs['mask'], inputs['index']))
      for row in np.flatnonzero(mask):
        hyps[int(index[row])] = self.corpus.tokenizer.decode(out[row])
    return hyps


def create_evaluator(config, workdir: str, mesh) -> TranslationEvaluator:
  """A `TranslationEvaluator` for a trained workdir: the model from `config.model` and the
  corpus `corpus.create_corpus` opens (the user's files, or the toy corpus, rebuilt if its
  cache folder is gone). `workdir` is not read: the corpus depends on the config only."""
  del workdir
  corpus_lib.prepare(config)
  corpus = corpus_lib.create_corpus(config, num_devices=mesh.devices.size,
                                    process_index=jax.process_index(),
                                    process_count=jax.process_count())
  model = model_lib.create_model(config.model, corpus.tokenizer.vocab_size)
  return TranslationEvaluator(config, model, mesh, corpus)


def _write(workdir: str, split: str, hyps: Sequence[str], figures: Dict[str, Any],
           step: Optional[int]) -> None:
  folder = workdir_path.path(workdir).joinpath(*FOLDER)
  folder.mkdir(parents=True, exist_ok=True)
  workdir_path.write_text(folder / f'{split}.hyp', ''.join(h + '\n' for h in hyps))
  results_path = folder / 'results.json'
  results = json.loads(results_path.read_text()) if results_path.exists() else {}
  if step is not None:
    results['checkpoint step'] = step
  results.update({f'{split}/{key}': value for key, value in figures.items()})
  workdir_path.write_text(results_path, jsonio.dumps(results, indent=2, sort_keys=True) + '\n')


def evaluate_translation(config, workdir: str, split: str, *, params=None,
                         step: Optional[int] = None,
                         evaluator: Optional[TranslationEvaluator] = None) -> Dict[str, Any]:
  """Translates and scores `split` ('valid' or 'test') of a translation run.

  Args:
    config: the run's config.
    workdir: the run's workdir (artefacts go to `<workdir>/evals/translation/`).
    split: 'valid' or 'test'.
    params: the model parameters (replicated over the evaluator's mesh); None restores the
      newest checkpoint of `workdir`.
    step: the training step of `params` (recorded in results.json); with `params=None`, the
      restored checkpoint's.
    evaluator: a `TranslationEvaluator` to reuse; None builds one (`create_evaluator`).

  Returns:
    `{'bleu': sacreBLEU, 'bleu_tok': tokenised BLEU, 'nll': per-token NLL, 'signature':
    sacreBLEU's signature string}`.
  """
  if split not in SPLITS:
    raise restore_lib.EvaluationError(
        f'split {split!r} cannot be evaluated; choose one of {", ".join(SPLITS)}')
  if evaluator is None:
    evaluator = create_evaluator(config, workdir, parallel.create_mesh())
  if params is None:
    variables, step = restore_lib.restore_checkpoint_variables(config, workdir,
                                                                  evaluator.mesh)
    params = variables['params']
  with jax.transfer_guard('allow'):
    hyps = evaluator.translate(params, split)
    nll = evaluator.nll(params, split)
  references = evaluator.corpus.references[split]
  score, signature = bleu.sacre_bleu(hyps, references)
  figures = {'bleu': score, 'bleu_tok': bleu.tokenized_bleu(hyps, references), 'nll': nll,
             'signature': signature}
  if jax.process_index() == 0:
    _write(workdir, split, hyps, figures, step)
  return figures


def evaluate(workdir: str, config, overrides: Optional[Dict[str, Any]] = None,
             names: Optional[Sequence[str]] = None) -> restore_lib.Outcome:
  """`evaluate.py` on a translation workdir: `evaluate_translation` on the newest checkpoint
  for the splits `names` (default: valid and test), with the workdir's own `config.evals`.

  Raises:
    EvaluationError: a `--config.*` override (translation uses the workdir's search
      settings), an unknown split, no checkpoint.
  """
  if overrides:
    raise restore_lib.EvaluationError(
        f'--config.{sorted(overrides)[0]}: a translation workdir is evaluated with its own '
        'config.evals (beam_size, length_penalty, max_len_a, max_len_b); drop the override')
  names = list(names or SPLITS)
  for name in names:
    if name not in SPLITS:
      raise restore_lib.EvaluationError(
          f'--evals: {name!r} is not a split of a translation workdir; choose from '
          f'{", ".join(SPLITS)}')
  validation.validate(config)
  mesh = parallel.create_mesh()
  variables, step = restore_lib.restore_checkpoint_variables(config, workdir, mesh)
  evaluator = create_evaluator(config, workdir, mesh)
  logging.info('evaluating %s at step %d', workdir, step)
  metrics = {}
  for split in names:
    figures = evaluate_translation(config, workdir, split, params=variables['params'],
                                   step=step, evaluator=evaluator)
    metrics.update({f'{split}/{k}': v for k, v in figures.items() if k != 'signature'})
  report = workdir_path.path(workdir).joinpath(*FOLDER, 'results.json')
  return restore_lib.Outcome(metrics=metrics, skipped={}, step=step, report=str(report))
