"""The evaluation runner on fixed-logit fakes: one prediction pass per (predictor, split), the
sections' keys, types, predictors and splits, and `skipped` as a status, against NumPy."""
import json
import os

import numpy as np
import pytest

from sdd_jax.evaluators import accuracy
from sdd_jax.evaluators import base
from sdd_jax.evaluators import runner

N_EVAL, N_TRAIN, BATCH = 40, 24, 16  # eval: 3 batches (16, 16, 8 padded); train: 2


def _counted(predict):
  """`predict` whose logits_fn counts its calls (one per batch and pass)."""
  calls = []

  def logits_fn(images):
    calls.append(images.shape[0])
    return predict.logits_fn(images)

  return base.Predictors(logits_fn=logits_fn, input_grad_fn=predict.input_grad_fn), calls


def _top1(table, codes, labels):
  return 100 * np.mean(np.argmax(np.asarray(table)[codes], axis=-1) == labels)


@pytest.fixture
def setup(fake, tmp_path):
  """Two splits of coded images, two fixed-logit predictors ('' and 'net1'), counted."""
  rng = np.random.default_rng(0)
  codes = {'test': rng.integers(0, 10, N_EVAL), 'train': rng.integers(0, 10, N_TRAIN)}
  labels = {split: rng.integers(0, 10, len(c)) for split, c in codes.items()}
  tables = {'': rng.normal(size=(10, 10)) * 3, 'net1': rng.normal(size=(10, 10)) * 3}
  contexts = {split: fake.ctx(tmp_path, fake.array_source(fake.coded_images(codes[split], rng),
                                                          labels[split]), batch_size=BATCH)
              for split in codes}
  predictors, calls = {}, {}
  for name, table in tables.items():
    predictors[name], calls[name] = _counted(fake.fixed_logits(table))
  return codes, labels, tables, contexts, predictors, calls


def _record(tmp_path, key):
  with open(os.path.join(tmp_path, 'evals', key, 'results.json'), encoding='utf-8') as f:
    return json.load(f)


def test_accuracy_and_calibration_on_one_split_predict_it_once(setup, tmp_path):
  codes, labels, tables, contexts, predictors, calls = setup
  runs = runner.plan({'accuracy': {}, 'calibration': {},
                      'acc_train': {'type': 'accuracy', 'split': 'train'},
                      'cal_train': {'type': 'calibration', 'split': 'train'}}, {}, 'test')
  assert [(r.key, r.kind, r.split) for r in runs.values()] == [
      ('acc_train', 'accuracy', 'train'), ('accuracy', 'accuracy', 'test'),
      ('cal_train', 'calibration', 'train'), ('calibration', 'calibration', 'test')]
  outcome = runner.run(list(runs.values()), contexts, predictors)
  # One pass per split: 3 eval batches + 2 train batches, not twice that.
  assert len(calls['']) == 3 + 2 and calls['net1'] == []
  m = outcome.metrics
  assert m['test/top1'] == pytest.approx(_top1(tables[''], codes['test'], labels['test']))
  assert m['calibration/top1'] == pytest.approx(m['test/top1'])
  assert m['acc_train/top1'] == pytest.approx(_top1(tables[''], codes['train'], labels['train']))
  assert m['cal_train/top1'] == pytest.approx(m['acc_train/top1'])
  assert m['test/count'] == N_EVAL and m['acc_train/count'] == N_TRAIN
  assert outcome.skipped == {}
  # Results land in evals/<key>/, under the section's keys; the plot with them.
  assert set(_record(tmp_path, 'cal_train')['metrics']) == {k for k in m
                                                            if k.startswith('cal_train/')}
  assert os.path.isfile(os.path.join(tmp_path, 'evals', 'cal_train', 'reliability.png'))
  assert _record(tmp_path, 'accuracy')['metrics']['test/top1'] == m['test/top1']
  # A second evaluation (new variables) predicts again: the cache lives for one call.
  runner.run([runs['accuracy'], runs['calibration']], contexts, predictors)
  assert len(calls['']) == 5 + 3


def test_only_calibration_pays_for_its_per_example_rows(setup, tmp_path, monkeypatch):
  """Accuracy alone skips `batch_calibration`; beside calibration (which runs after it), the one
  pass computes it for both."""
  _, _, _, contexts, predictors, calls = setup
  extras, original = [], accuracy.batch_calibration
  monkeypatch.setattr(accuracy, 'batch_calibration', lambda *a: extras.append(1) or original(*a))
  runner.run(list(runner.plan({'accuracy': {}}, {}, 'test').values()), contexts, predictors)
  assert extras == [] and len(calls['']) == 3
  runs = runner.plan({'accuracy': {}, 'calibration': {}}, {}, 'test')
  assert list(runs) == ['accuracy', 'calibration']
  outcome = runner.run(list(runs.values()), contexts, predictors)
  assert len(extras) == 3 and len(calls['']) == 3 + 3
  assert outcome.metrics['calibration/count'] == N_EVAL
  assert 0 <= outcome.metrics['calibration/brier'] <= 2


def test_a_methods_predictor_gets_accuracy_under_its_prefix(setup, tmp_path):
  codes, labels, tables, contexts, predictors, calls = setup
  runs = runner.plan({'accuracy': {}, 'calibration': {},
                      'cal_net1': {'type': 'calibration', 'pred': 'net1'}},
                     {'net1': 'dml/net1'}, 'test')
  assert sorted(runs) == ['accuracy', 'accuracy_net1', 'cal_net1', 'calibration']
  outcome = runner.run(list(runs.values()), contexts, predictors)
  assert len(calls['']) == 3 and len(calls['net1']) == 3  # one pass per predictor
  m = outcome.metrics
  assert m['dml/net1/top1'] == pytest.approx(_top1(tables['net1'], codes['test'],
                                                   labels['test']))
  assert m['test/top1'] == pytest.approx(_top1(tables[''], codes['test'], labels['test']))
  assert m['dml/net1/top1'] != m['test/top1']
  assert m['cal_net1/top1'] == pytest.approx(m['dml/net1/top1'])
  # A section that already runs accuracy with the predictor replaces the derived one.
  runs = runner.plan({'accuracy': {}, 'mine': {'type': 'accuracy', 'pred': 'net1'}},
                     {'net1': 'dml/net1'}, 'test')
  assert sorted(runs) == ['accuracy', 'mine']


class _PartlySkipped(base.Evaluator):
  """Writes a record naming one skipped OOD-like set and returns a `skipped/...` key."""
  name = 'partly'

  def __call__(self, ctx, predict):
    from sdd_jax.evaluators import results  # pylint: disable=import-outside-toplevel
    results.write_results(ctx.workdir, self.key, data_config=ctx.data_config,
                          metrics={}, details={'skipped_sets': {'isun': 'fetch iSUN'}})
    return {'partly/svhn/auroc': 90.0, 'skipped/partly/isun': 1.0}


def test_skipped_is_a_status_not_a_metric(setup, tmp_path):
  _, _, _, contexts, predictors, _ = setup
  runs = runner.plan({'corruption': {'path': str(tmp_path / 'nowhere')}, 'accuracy': {}}, {},
                     'test')
  partly = runner.Run(key='partly', kind='partly', evaluator=_PartlySkipped({}, key='partly'),
                      pred='', split='test', section={})
  outcome = runner.run([*runs.values(), partly], contexts, predictors)
  assert set(outcome.skipped) == {'corruption', 'partly/isun'}
  assert 'nowhere' in outcome.skipped['corruption']
  assert outcome.skipped['partly/isun'] == 'fetch iSUN'
  assert not [k for k in outcome.metrics if k.startswith('skipped')]
  assert outcome.metrics['partly/svhn/auroc'] == 90.0 and 'test/top1' in outcome.metrics
  assert 'nowhere' in _record(tmp_path, 'corruption')['skipped']
  assert _record(tmp_path, 'partly')['metrics'] == {'partly/svhn/auroc': 90.0}


def test_due_follows_every_epochs():
  runs = runner.plan({'accuracy': {'every_epochs': 2}, 'calibration': {'every_epochs': 0}}, {},
                     'test')
  assert [r.key for r in runs.values() if r.due(4)] == ['accuracy']
  assert [r.key for r in runs.values() if r.due(3)] == []
  assert [r.key for r in runs.values() if r.due(None)] == ['accuracy', 'calibration']


def test_training_leaves_out_the_sections_not_in_training():
  runs = runner.plan({'accuracy': {'every_epochs': 1},
                      'calibration': {'every_epochs': 1, 'in_training': False}}, {}, 'test')
  assert [r.key for r in runs.values() if r.due(1, training=True)] == ['accuracy']
  assert [r.key for r in runs.values() if r.due(None, training=True)] == ['accuracy']
  assert [r.key for r in runs.values() if r.due(None)] == ['accuracy', 'calibration']  # evaluate.py
