"""Data-parallel training for ``dataprune score``: launched by ``--nproc N`` or ``torchrun``.

Every rank runs the same loop on its shard of each epoch (a DistributedSampler-style split:
one seeded permutation per epoch, padded with its first samples to a multiple of the world
size, rank r takes positions r, r+W, ...). Gradients are averaged with one all_reduce per
step and BatchNorm buffers follow rank 0 (as DDP's ``broadcast_buffers``), so all ranks keep
identical weights. The :class:`~dataprune.Recorder` merges the ranks' records once per epoch.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from typing import Sequence

import torch
from torch import nn

from ..errors import DataPruneError
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


#: set in the environment of the ranks :func:`launch` starts
LAUNCHED = "DATAPRUNE_LAUNCHED"
#: exit status of a rank that stopped because another rank died (:class:`RankLost`)
RANK_LOST_EXIT = 3


class RankLost(DataPruneError):
    """Another rank of the process group failed or died; this rank stops too (quietly
    under :func:`launch`, which reports the rank that caused it)."""


def is_rank_lost(error: BaseException) -> bool:
    """Whether ``error``, raised by a collective, means another rank is gone."""
    if isinstance(error, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        w in text for w in ("gloo", "NCCL", "Connection reset", "Connection closed", "Broken pipe"))


def _die_with(parent: int) -> None:
    """In a new rank, before exec: be killed when the launcher ``parent`` dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the launcher's own clean-up still applies
        pass
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os._exit(1)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m dataprune ARGV`` in ``nproc`` local processes (like torchrun).

    Returns 0 when every rank succeeds. Ranks die with the launcher (SIGKILL on Linux), and
    when one rank dies or fails the launcher stops the others at once: a rank killed by a
    signal or crashing raises a one-line :class:`DataPruneError` ("rank 1 died (signal 9)");
    a rank that failed with a user error (exit 2) has printed it, and 2 is returned.
    """
    env = {**os.environ, "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "LOCAL_WORLD_SIZE": str(nproc), LAUNCHED: "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    me = os.getpid()
    procs = [subprocess.Popen([sys.executable, "-m", "dataprune", *argv], preexec_fn=lambda: _die_with(me),
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(nproc)]
    grace = None  # a rank that stopped for another's failure: give that one time to exit
    try:
        while True:
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes):
                return 0
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed and (any(c != RANK_LOST_EXIT for _, c in failed) or None not in codes):
                break
            if failed:
                grace = grace or time.monotonic() + 10
                if time.monotonic() > grace:
                    break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    # the culprit first: a signal, then a crash, then a user error; RankLost only follows one
    rank, code = min(failed, key=lambda rc: (rc[1] > 0, rc[1] in (2, RANK_LOST_EXIT), rc[1] == RANK_LOST_EXIT))
    if code < 0:
        raise DataPruneError(f"rank {rank} died (signal {-code})")
    if code == 2:
        return 2
    raise DataPruneError(f"rank {rank} failed (exit status {code}); see its output above")
