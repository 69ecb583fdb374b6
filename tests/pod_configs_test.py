"""The pod tokens of the CIFAR-100 ResNet-18 and IWSLT configs (docs/pods.md, "Pod defaults
from the compile check"): the stated batch, lr, warm-up and BatchNorm group, by arithmetic."""
import pytest

from configs import cifar100_resnet18_sdd
from configs import iwslt15_pskd
from sdd_jax.config import cli as config_cli
from sdd_jax.config import validation as config_validation
from sdd_jax.translation import validation as translation_validation


def test_cifar_pod_is_batch_1024_lr_linearly_scaled_with_warmup_and_groups_of_128():
  paper = cifar100_resnet18_sdd.get_config(None)
  pod = cifar100_resnet18_sdd.get_config('pod,seed=2')
  config_validation.validate(pod)
  assert (paper.batch_size, paper.optim.lr, paper.model.bn_group) == (128, 0.1, 0)
  assert (pod.batch_size, pod.eval_batch_size, pod.optim.warmup_epochs) == (1024, 1024, 5)
  assert pod.optim.lr == pytest.approx(0.1 * 1024 / 128, rel=1e-12)  # 0.8
  assert (pod.model.dtype, pod.model.bn_group, pod.seed) == ('bfloat16', 128, 2)
  # the rest is the paper's recipe
  assert (pod.num_epochs, tuple(pod.optim.lr_boundaries), pod.optim.weight_decay) == (
      200, (100, 150), 1e-4)
  assert pod.methods.to_dict() == paper.methods.to_dict()
  # 1024 rows over 8 chips: 128 per chip, one BatchNorm group each
  config_validation.validate_for_devices(pod, 8, 2)
  assert pod.batch_size // 8 == pod.model.bn_group


def test_cifar_pod_lr_follows_the_batch_and_smoke_keeps_ghost_bn():
  argv = ['train.py', '--config', 'configs/cifar100_resnet18_sdd.py:pod', '--config.batch_size=2048']
  config = config_cli.load(argv)
  assert (config.batch_size, config.optim.lr) == (2048, pytest.approx(1.6, rel=1e-12))
  smoke = cifar100_resnet18_sdd.get_config('pod,smoke')
  config_validation.validate(smoke)
  assert (smoke.batch_size, smoke.model.bn_group) == (16, 8)
  with pytest.raises(ValueError, match=r"unknown config argument\(s\) \['pods'\]"):
    cifar100_resnet18_sdd.get_config('pods')


def test_iwslt_pod_tokens_and_dtype_and_the_recipe_otherwise():
  recipe = iwslt15_pskd.get_config('de_en')
  pod = iwslt15_pskd.get_config('en_de,pod')
  translation_validation.validate(pod)
  assert pod.data.tokens_per_batch == iwslt15_pskd.POD_TOKENS_PER_BATCH == 4096  # the recipe's
  assert (pod.model.dtype, recipe.model.dtype, recipe.data.tokens_per_batch) == (
      'bfloat16', 'float32', 4096)
  assert (pod.data.source_lang, pod.data.target_lang) == ('en', 'de')
  assert pod.optim.to_dict() == recipe.optim.to_dict()
  assert pod.methods.to_dict() == recipe.methods.to_dict()
