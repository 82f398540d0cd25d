"""Data-parallel training for ``dataprune score``: launched by ``--nproc N`` or ``torchrun``.

Every rank runs the same loop on its shard of each epoch (a DistributedSampler-style split:
one seeded permutation per epoch, padded with its first samples to a multiple of the world
size, rank r takes positions r, r+W, ...). Gradients are averaged with one all_reduce per
step and BatchNorm buffers follow rank 0 (as DDP's ``broadcast_buffers``), so all ranks keep
identical weights. The :class:`~dataprune.Recorder` merges the ranks' records once per epoch.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Sequence

import torch
from torch import nn

from .data import InMemoryLoader
from .order import shard_order

#: a rank that waits longer than this for the others fails instead of hanging
TIMEOUT = timedelta(minutes=30)


def env_world_size() -> int:
    """WORLD_SIZE from the environment (set by torchrun and by :func:`launch`), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env() -> tuple[int, int, bool]:
    """Join the process group described by the environment (torchrun's variables).

    Returns ``(rank, world_size, created)``; ``created`` is True when this call initialised
    the group (the caller then destroys it). gloo on CPU, nccl when CUDA is available.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if env_world_size() <= 1:
        return 0, 1, False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=TIMEOUT)
    return dist.get_rank(), dist.get_world_size(), True


def device_for(rank: int) -> torch.device:
    if torch.distributed.is_initialized() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class ShardLoader(InMemoryLoader):
    """:class:`InMemoryLoader` over this rank's shard of a fresh permutation every epoch."""

    def __init__(self, *args, rank: int, world_size: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rank, self.world_size = rank, world_size
        self._all = self.indices
        self._shuffle_all, self.shuffle = self.shuffle, False
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.indices = shard_order(self._all, seed=self.seed, epoch=epoch, shuffle=self._shuffle_all,
                                   rank=self.rank, world_size=self.world_size)


def broadcast_model(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    for t in list(model.parameters()) + list(model.buffers()):
        torch.distributed.broadcast(t.data, 0)


def grad_sync(model: nn.Module) -> None:
    """Average gradients over ranks (one flat all_reduce) and take rank 0's buffers."""
    dist = torch.distributed
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if grads:
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
    bufs = [b for b in model.buffers() if b.is_floating_point()]
    if bufs:
        flat = torch.cat([b.reshape(-1) for b in bufs])
        dist.broadcast(flat, 0)
        offset = 0
        for b in bufs:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m dataprune ARGV`` in ``nproc`` local processes (like torchrun).

    Returns the first non-zero exit status, or 0. A rank that fails makes the others fail
    at their next collective (or after :data:`TIMEOUT`); all are waited for.
    """
    env = {**os.environ, "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "LOCAL_WORLD_SIZE": str(nproc),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    procs = [subprocess.Popen([sys.executable, "-m", "dataprune", *argv],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(nproc)]
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c), 0)
