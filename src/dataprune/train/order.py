"""The order in which one epoch visits the samples: one function for every loader and sampler
(the in-memory loader, the image-folder loader and :class:`~dataprune.PruneAt`), single- or
multi-process."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import DataPruneError

#: seeds are non-negative and below 2**63 (torch.manual_seed's range; NumPy's SeedSequence
#: takes no negative entry)
MAX_SEED = 2**63 - 1


def check_seed(seed: object) -> int:
    """``seed`` as an int in [0, 2**63 - 1], or a one-line error."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise DataPruneError(f"seed {seed!r} is out of range; expected an integer in [0, 2**63 - 1]")
    return int(seed)


def epoch_seed(*parts: int) -> int:
    """A 63-bit seed derived from ``parts`` (e.g. ``seed, epoch``) with NumPy's SeedSequence."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def epoch_order(indices: Tensor | np.ndarray, *, seed: int, epoch: int, shuffle: bool = True,
                rank: int = 0, world_size: int = 1, drop_last: bool = False) -> Tensor:
    """This rank's sample indices for ``epoch`` (a DistributedSampler-style split).

    ``indices`` (M,) int64 are permuted by ``torch.randperm`` seeded with
    ``epoch_seed(seed, epoch)`` when ``shuffle`` (the same permutation on every rank), then
    padded with their first entries to a multiple of ``world_size`` (or cut to one,
    ``drop_last``), and rank r takes positions r, r+W, ...; returns a CPU int64 tensor of
    ceil(M / W) (floor with ``drop_last``) entries. One rank gets the whole permutation, so
    a single process visits the samples in the order world size 1 would.

    Hand-computed case: indices [0..4], no shuffle, W=2 -> rank 0 gets [0, 2, 4], rank 1
    gets [1, 3, 0] (padded with sample 0); with ``drop_last`` [0, 2] and [1, 3].
    """
    if not 0 <= rank < world_size:
        raise DataPruneError(f"rank={rank} with world_size={world_size}; expected 0 <= rank < world_size")
    order = torch.as_tensor(np.asarray(indices) if isinstance(indices, np.ndarray) else indices,
                            dtype=torch.int64).cpu()
    if shuffle:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = order[torch.randperm(len(order), generator=g)]
    if world_size == 1:
        return order
    if drop_last:
        order = order[: len(order) // world_size * world_size]
    else:
        pad = -len(order) % world_size
        order = torch.cat([order, order.repeat(-(-pad // max(len(order), 1)))[:pad]])  # duplicates
    return order[rank::world_size]


def shard_size(count: int, world_size: int, drop_last: bool = False) -> int:
    """Length of one rank's part of an epoch of ``count`` samples (see :func:`epoch_order`)."""
    return count // world_size if drop_last else -(-count // world_size)
