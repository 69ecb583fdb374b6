"""Input pipeline: random-access sources, a pure index sampler and numpy augmentation.

Why random access (grain) and not tf.data: every method here needs to know *which* examples a
step holds (PS-KD keeps a per-example prediction table, CS-KD draws a partner of the same class,
DDGSD augments each image twice) and an exact resume must replay the very same batches. With
random-access sources (TFDS array_record via `tfds.data_source`, npz, image folders) the batch of
step t is a pure function of (seed, t): the sampler picks indices from a permutation of
(seed, epoch), augmentation draws from keys (seed, epoch, index, view), so resuming needs no
iterator state, P processes read disjoint row slices of the same global batch, and pairs or
extra views are one more index lookup. tf.data would need TensorFlow (not installed here),
checkpointed iterator state and a second pipeline for class-paired sampling. grain supplies only
the background work: worker processes for training batches (`mp_prefetch`), threads for eval.
Batches leave the host as uint8; `normalization.py` normalises them on the device.
"""
from sdd_jax.data import folder_source  # registers 'folder'  # pylint: disable=unused-import
from sdd_jax.data import tfds_source  # registers 'tfds'  # pylint: disable=unused-import
from sdd_jax.data.eval_batches import create_eval_batches, num_eval_batches
from sdd_jax.data.loader import TrainLoader, loader_options, resolve_workers
from sdd_jax.data.normalization import IMAGE_KEYS, make_normalize_fn, normalize_eval_batch
from sdd_jax.data.sources import SOURCES, DataError, Source, create_source
from sdd_jax.data.split_checks import check_splits

__all__ = ['DataError', 'IMAGE_KEYS', 'SOURCES', 'Source', 'TrainLoader', 'check_splits',
           'create_eval_batches', 'create_source', 'loader_options', 'make_normalize_fn',
           'normalize_eval_batch', 'num_eval_batches', 'resolve_workers']
