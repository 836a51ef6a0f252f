"""Training in several processes: where this process stands, and what all processes agree on.

Explained in ``book/07_train_it_yourself.ipynb``. Under ``torchrun --nproc_per_node=N`` the
training command runs as N processes, each with a ``rank`` 0..N-1 and its own slice of every
epoch's images; after each backward pass DistributedDataParallel averages the gradients, so all N
models take the same step. Run plainly, there is one process of rank 0 and no process group, and
everything here is a no-op.
"""
from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass
class Distributed:
    """Where this process stands among the training processes (``book/07_train_it_yourself.ipynb``).

    Process 0 alone prints, evaluates and writes files; the others wait for it at ``barrier()``.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Process 0 alone prints, evaluates and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def rng_states(self) -> list[torch.Tensor]:
        """Every process's torch random state (dropout draws differ per process), in rank order;
        every process must call it (a checkpoint saves them all)."""
        state = torch.get_rng_state()
        if not self.enabled:
            return [state]
        states: list = [None] * self.world_size
        dist.all_gather_object(states, state)
        return states

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true if it is true in any process: every process gets the same answers,
        so all of them stop at the same step."""
        values = torch.tensor([float(flag) for flag in flags], device=self.device)
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in values.tolist())


def setup_distributed() -> Distributed:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...)
    (``book/07_train_it_yourself.ipynb``).

    gloo on the CPU, nccl with one GPU per process (LOCAL_RANK picks it).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if world_size == 1:
        return Distributed(0, 1, device)
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), device)


def shutdown(dist_info: Distributed) -> None:
    """Leave the process group, if there is one (``book/07_train_it_yourself.ipynb``)."""
    if dist_info.enabled and dist.is_initialized():
        dist.destroy_process_group()
