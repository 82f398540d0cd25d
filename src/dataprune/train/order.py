"""The order in which one epoch visits the samples, shared by every loader."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def epoch_seed(*parts: int) -> int:
    """A 63-bit seed derived from ``parts`` (e.g. ``seed, epoch``) with NumPy's SeedSequence."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def shard_order(indices: Tensor, *, seed: int, epoch: int, shuffle: bool, rank: int = 0,
                world_size: int = 1) -> Tensor:
    """This rank's sample indices for ``epoch`` (a DistributedSampler-style split).

    ``indices`` (M,) int64 are permuted with a seed drawn from ``(seed, epoch, 7)`` when
    ``shuffle``, padded with their first entries to a multiple of ``world_size``, and rank r
    takes positions r, r+W, ...; returns (ceil(M / W),) int64. With one rank and no shuffle
    it is ``indices`` unchanged. Example: indices [0..4], no shuffle, W=2 -> rank 0 gets
    [0, 2, 4], rank 1 gets [1, 3, 0].
    """
    order = indices
    if shuffle:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch, 7))
        order = order[torch.randperm(len(order), generator=g).to(order.device)]
    if world_size == 1:
        return order
    total = -(-len(order) // world_size) * world_size
    order = torch.cat([order, order[: total - len(order)]])  # pad with duplicates
    return order[rank::world_size]
