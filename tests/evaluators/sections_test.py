"""`config.evals.<key>` sections: type resolution, one-line errors and metric renaming, by hand."""
import ml_collections
import pytest

from sdd_jax import evaluators
from sdd_jax.config import validation
from sdd_jax.evaluators import sections
from tests import workdirs

DATA = ml_collections.ConfigDict({'train_split': 'train', 'eval_split': 'test'})


def test_the_type_defaults_to_the_key():
  assert sections.section_type('accuracy', {}) == 'accuracy'
  assert sections.section_type('acc_train', {'type': 'accuracy'}) == 'accuracy'
  assert sections.section_type('calibration', {'type': ''}) == 'calibration'
  built = evaluators.create_evaluators({'acc_train': {'type': 'accuracy', 'split': 'train'},
                                        'odin': {}})
  assert [(k, type(e).__name__, e.key) for k, e in built.items()] == [
      ('acc_train', 'Accuracy', 'acc_train'), ('odin', 'Odin', 'odin')]


@pytest.mark.parametrize('evals,message', [
    ({'acuracy': {}}, r"config.evals: must be a section per evaluator, named one of \[.*\], got "
                  r"'acuracy'; did you mean accuracy\? \(or give it a type"),
    ({'x': {'type': 'odn'}}, r"config.evals.x.type: must be one of .* got 'odn'; did you mean odin"),
    ({'x': {'type': 'fgsm', 'sets': ()}}, r"config.evals.x: unknown field\(s\) \['sets'\]; known: "
                                          r'epsilons, every_epochs, in_training, norm_epsilons, '
                                          r'paper_epsilons, pred, split, type'),
    ({'x': 3}, r'config.evals.x: must be a section of fields \(a dict\), got 3'),
])
def test_names_and_fields_are_one_line(evals, message):
  with pytest.raises(ValueError, match=message):
    sections.check_names(evals, evaluators.registered_defaults())


def test_predictors_and_splits():
  sections.check_values({'a': {'pred': 'net1', 'split': 'train'}, 'b': {}}, ['net1'], DATA)
  with pytest.raises(ValueError, match=r"config.evals.a.pred: must be '' \(the network\) or one "
                                       r"of the methods' predictors \['ensemble', 'net1'\], got "
                                       r"'net2'; did you mean net1\?"):
    sections.check_values({'a': {'pred': 'net2'}}, ['net1', 'ensemble'], DATA)
  with pytest.raises(ValueError, match=r"config.evals.a.split: .* got 'validation'"):
    sections.check_values({'a': {'split': 'validation'}}, [], DATA)


def test_rename_moves_the_keys_into_the_section_key():
  assert sections.rename('cal_train', {'calibration/ece': 1.0, 'calibration/top1': 2.0},
                         'calibration') == {'cal_train/ece': 1.0, 'cal_train/top1': 2.0}
  assert sections.rename('acc_train', {'test/top1': 3.0}, 'test') == {'acc_train/top1': 3.0}
  assert sections.rename('odin_b', {'odin/lsun/auroc': 4.0, 'msp/lsun/auroc': 5.0}, '') == {
      'odin_b/odin/lsun/auroc': 4.0, 'odin_b/msp/lsun/auroc': 5.0}
  assert sections.sets_prefix({'prefix': 'test'}, {'prefix': 'test'}) is False
  assert sections.sets_prefix({'prefix': 'train'}, {'prefix': 'test'}) is True


def test_in_training_defaults_to_true_and_must_be_a_bool():
  assert sections.in_training({}) and sections.in_training({'in_training': True})
  assert not sections.in_training({'in_training': False})
  config = workdirs.tiny_config()
  config.evals.calibration = {'every_epochs': 0, 'in_training': False}
  validation.validate(config)
  config.evals.calibration = {'every_epochs': 0, 'in_training': 'no'}
  with pytest.raises(ValueError, match=r"config.evals.calibration.in_training: must be True or "
                                       r"False, got 'no'"):
    validation.validate(config)
