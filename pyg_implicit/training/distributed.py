r"""Multi-process data parallelism for :func:`~pyg_implicit.training.fit`.

``torchrun --nproc_per_node N script.py`` starts ``N`` processes; inside :func:`distributed` each
joins the process group (NCCL on GPUs, gloo on CPUs) and :func:`fit` wraps the model in
``DistributedDataParallel``. :func:`rank_zero_first` lets rank 0 build a dataset cache before the
others read it.
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist

__all__ = ["distributed", "rank_zero_first"]


@contextlib.contextmanager
def distributed():
    """Initialise the process group when started by ``torchrun`` (``WORLD_SIZE > 1``); yields ``(rank, world_size)``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield 0, 1
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    try:
        yield dist.get_rank(), world_size
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def rank_zero_first():
    """Run the block on rank 0 first (e.g. generate and cache a dataset), then on the other ranks."""
    active = dist.is_available() and dist.is_initialized()
    if active and dist.get_rank() != 0:
        dist.barrier()
    yield
    if active and dist.get_rank() == 0:
        dist.barrier()
