"""This process's place in a torchrun job (rank, world size, device, the process group) and
its RNG state, for the detection recipe's checkpoints."""
import os

import torch
import torch.distributed as dist


class Processes:
  """This process's place: rank, world size, device; the process group under torchrun."""

  def __init__(self, device: str):
    self.distributed = 'WORLD_SIZE' in os.environ
    self.rank = int(os.environ.get('RANK', 0))
    self.world = int(os.environ.get('WORLD_SIZE', 1))
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    self.device = torch.device(f'cuda:{local_rank}' if device == 'cuda' else 'cpu')
    if device == 'cuda':
      torch.cuda.set_device(self.device)
    if self.distributed and not dist.is_initialized():
      dist.init_process_group('nccl' if device == 'cuda' else 'gloo')

  @property
  def main(self) -> bool:
    return self.rank == 0

  def barrier(self):
    if self.distributed:
      dist.barrier()

  def gather(self, value) -> list:
    """[value of rank 0, rank 1, ...] on every process."""
    if not self.distributed:
      return [value]
    values = [None] * self.world
    dist.all_gather_object(values, value)
    return values

  def any(self, flag: bool) -> bool:
    if not self.distributed:
      return flag
    value = torch.tensor(float(flag), device=self.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def rng_state(processes: Processes) -> dict:
  state = {'torch': torch.get_rng_state()}
  if processes.device.type == 'cuda':
    state['cuda'] = torch.cuda.get_rng_state(processes.device)
  return state


def set_rng_state(state: dict, processes: Processes) -> None:
  torch.set_rng_state(state['torch'])
  if 'cuda' in state and processes.device.type == 'cuda':
    torch.cuda.set_rng_state(state['cuda'], processes.device)
