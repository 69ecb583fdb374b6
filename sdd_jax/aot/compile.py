"""Compiling for a TPU slice that is not here: libtpu's topology description
(`jax.experimental.topologies.get_topology_desc`, the `tpu` extra) gives the slice's devices,
a `'data'` mesh over them, and `jit(...).lower(abstract args).compile()` gives the program XLA
would run on each chip, with its memory and cost analyses and its HLO.

No TPU backend is started: the topology API loads libtpu as a compiler only, so this works under
`JAX_PLATFORMS=cpu` (the tests' setting). libtpu prints TPU-discovery errors to stderr when it
first loads on a host without TPUs; `topology_mesh` keeps them off the terminal (a topology
libtpu cannot build is one `error:` line with its message).
"""
import collections
import contextlib
import os
import re
import tempfile
import time
from typing import Any, Dict, Iterator, Tuple

import jax
import numpy as np
from jax.sharding import Mesh

from sdd_jax.errors import UserError
from sdd_jax import parallel


class TopologyError(UserError):
  """libtpu is missing, or does not know the topology name."""


class DoesNotFitError(UserError):
  """A program needs more memory per chip than the chip has (the compiler's verdict, or the
  report's headroom rule)."""


COLLECTIVES = ('all-reduce', 'all-gather', 'reduce-scatter', 'collective-permute',
               'all-to-all')
_OP = re.compile(r'=\s*(.+?)\s+(' + '|'.join(COLLECTIVES) + r')(-start)?\(')
_SHAPE = re.compile(r'\b(pred|[a-z]+\d*)\[([\d,]*)\]')
_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'f8e4m3fn': 1, 'f8e5m2': 1, 'bf16': 2, 'f16': 2,
          's16': 2, 'u16': 2, 'f32': 4, 's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[list]:
  """Redirects file descriptor 2 (libtpu's C++ logging writes there) to a file; the text is
  put in the yielded list on exit."""
  captured = []
  with tempfile.TemporaryFile(mode='w+b') as sink:
    saved = os.dup(2)
    os.dup2(sink.fileno(), 2)
    try:
      yield captured
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      sink.seek(0)
      captured.append(sink.read().decode(errors='replace'))


def topology_mesh(topology: str) -> Mesh:
  """A `Mesh` with one 'data' axis over every chip of `topology` (e.g. 'v5e:2x2')."""
  try:
    from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
    import libtpu  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise TopologyError('the compile check needs libtpu: pip install -r requirements-tpu.txt '
                        '(or pip install -e ".[tpu]")') from None
  # libtpu takes /tmp/libtpu_lockfile for its process's life unless told otherwise: a second
  # compile check (or test) on the same host would fail. Compiling opens no chip to share.
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  with _quiet_stderr():
    try:
      description = topologies.get_topology_desc(topology_name=topology, platform='tpu')
      if len({tuple(d.coords) for d in description.devices}) < len(description.devices):
        # v4: libtpu's default lists each chip's 2 TensorCores as 2 devices; a real v4 slice
        # runs them as one megacore device per chip (as v5p's default already does here).
        description = topologies.get_topology_desc(topology_name=topology, platform='tpu',
                                                   chip_config_name='megacore')
    except Exception as e:  # pylint: disable=broad-except
      error = str(e).splitlines()[0] if str(e) else type(e).__name__
    else:
      error = None
  if error is not None:
    raise TopologyError(f'--topology {topology}: libtpu cannot build it ({error}); use a '
                        'slice name such as v5e:2x2, v5e:16x16, v4:2x2x2, v5p:4x4x4')
  devices = np.asarray(description.devices)
  return Mesh(devices.reshape(-1), (parallel.DATA_AXIS,))


def collectives(hlo: str) -> Dict[str, Dict[str, int]]:
  """{kind: {'count', 'bytes'}} of the collective ops in an HLO module's text, each op counted
  once where it is written (an op inside a loop body runs once per iteration: not multiplied)
  and its bytes the size of its result (for an async `-start`, of its largest tuple element)."""
  found = collections.defaultdict(lambda: {'count': 0, 'bytes': 0})
  for line in hlo.splitlines():
    match = _OP.search(line)
    if not match:
      continue
    sizes = [_BYTES.get(dtype, 4) * int(np.prod([int(d) for d in dims.split(',') if d] or [1]))
             for dtype, dims in _SHAPE.findall(match.group(1))]
    kind = found[match.group(2)]
    kind['count'] += 1
    kind['bytes'] += (max(sizes) if match.group(3) else sum(sizes)) if sizes else 0
  return {kind: dict(found[kind]) for kind in COLLECTIVES if kind in found}


def shard_bytes(args) -> int:
  """Bytes of one chip's shards of the abstract `args` (`ShapeDtypeStruct`s with shardings),
  before the compiler's tile padding: the trees' own arithmetic."""
  return int(sum(np.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
                 for x in jax.tree.leaves(args)))


def compile_program(fn, args) -> Tuple[Dict[str, object], Any]:
  """Lowers and compiles jitted `fn` on abstract `args`; its per-chip figures (`memory`:
  XLA's memory analysis, whose `arguments` include TPU tile padding; `unpadded_arguments`: the
  shards' bytes without it), and the compiled executable."""
  start = time.perf_counter()
  lowered = fn.lower(*args)
  # JAX's persistent cache cannot load an executable compiled for devices without a client
  # (it warns on every read): these programs stay out of it.
  cache = jax.config.jax_enable_compilation_cache
  jax.config.update('jax_enable_compilation_cache', False)
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as e:
    if 'RESOURCE_EXHAUSTED' not in str(e):
      raise
    first = str(e).splitlines()[0].rstrip('.')
    raise DoesNotFitError(f'the compiler refuses it: {first}; lower '
                          'config.batch_size (or use more chips)') from None
  finally:
    jax.config.update('jax_enable_compilation_cache', cache)
  seconds = time.perf_counter() - start
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  arguments, outputs = memory.argument_size_in_bytes, memory.output_size_in_bytes
  aliased, temporaries = memory.alias_size_in_bytes, memory.temp_size_in_bytes
  return dict(
      compile_seconds=seconds,
      unpadded_arguments=shard_bytes(args),
      memory=dict(arguments=int(arguments), outputs=int(outputs), aliased=int(aliased),
                  temporaries=int(temporaries), code=int(memory.generated_code_size_in_bytes),
                  # donated outputs reuse their arguments' buffers
                  total=int(arguments + outputs - aliased + temporaries)),
      flops=float(cost.get('flops', 0.0)), bytes_accessed=float(cost.get('bytes accessed', 0.0)),
      collectives=collectives(compiled.as_text())), compiled
