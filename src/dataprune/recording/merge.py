"""The merge of every rank's :class:`~.table.EpochTable` under torch.distributed, once per epoch."""
from __future__ import annotations

import torch

from .table import EpochTable


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default torch.distributed group, or (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def merge_device() -> torch.device:
    """Where a rank that recorded nothing keeps its table: the backend's device."""
    backend = torch.distributed.get_backend()
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def pick_owner(values: torch.Tensor, mine: torch.Tensor) -> torch.Tensor:
    """float32 ``values`` as int32 bit patterns where ``mine``, else INT32_MIN: after an
    all_reduce MAX every entry holds its owner's exact bits (NaN and -0.0 included)."""
    lowest = torch.iinfo(torch.int32).min
    return torch.where(mine, values.contiguous().view(torch.int32), lowest)


def merge_ranks(table: EpochTable, rank: int, world_size: int, recording: int) -> None:
    """All-gather-free exact merge of every rank's (N+1,) columns (3 collectives), in place.

    owner[i] = highest rank that wrote sample i this epoch (all_reduce MAX of rank or -1);
    each column then keeps only its owner's value (others contribute -inf / -1) and an
    all_reduce MAX picks it: exact, deterministic, no arithmetic on the values. The
    ``bad`` flags are OR-ed. ``tdds_d``: see :func:`_merge_tdds`.
    """
    import torch.distributed as dist
    buf, n = table.columns, table.num_samples
    written = buf["labels"] >= 0
    written[n] = False  # the spare slot never counts
    packed = torch.cat([torch.where(written, rank, -1).to(torch.int32), table.bad.to(torch.int32)])
    dist.all_reduce(packed, op=dist.ReduceOp.MAX)
    owner, table.bad = packed[: n + 1], packed[n + 1:] > 0
    mine = owner == rank
    plain = [s for s in table.signals if s != "tdds_d"]
    values = pick_owner(torch.stack([buf[s] for s in plain]), mine)
    labels = torch.where(mine, buf["labels"], -1)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    dist.all_reduce(labels, op=dist.ReduceOp.MAX)
    values = values.view(torch.float32)
    unseen = owner < 0
    for i, s in enumerate(plain):  # into the table's columns
        buf[s].copy_(torch.where(unseen, float("nan"), values[i]))
    buf["labels"].copy_(labels)
    if table.tdds is not None:
        _merge_tdds(table, rank, world_size, recording)


def _merge_tdds(table: EpochTable, rank: int, world_size: int, recording: int) -> None:
    """tdds_d (first occurrence wins) and its state, the previous log-softmax per sample, go
    to the LOWEST rank that saw the sample this epoch; rows nobody saw are already equal on
    all ranks (by induction). O(N*C) traffic per epoch."""
    import torch.distributed as dist
    state, n, w = table.tdds, table.num_samples, world_size
    first = torch.where(state.prev_epoch == recording, w - 1 - rank, -1).to(torch.int32)
    first[n] = -1
    dist.all_reduce(first, op=dist.ReduceOp.MAX)
    seen, mine = first >= 0, first == w - 1 - rank
    d = pick_owner(table.columns["tdds_d"], mine)
    logp = pick_owner(state.prev_logp.float(), mine[:, None])
    dist.all_reduce(d, op=dist.ReduceOp.MAX)
    dist.all_reduce(logp, op=dist.ReduceOp.MAX)
    table.columns["tdds_d"].copy_(torch.where(seen, d.view(torch.float32), float("nan")))
    logp = logp.view(torch.float32).to(torch.float16)
    state.prev_logp = torch.where(seen[:, None], logp, state.prev_logp)
    state.prev_epoch = torch.where(seen, recording, state.prev_epoch).to(torch.int32)
