"""Pruning inside one training run: score on the first T epochs, then train on the subset.

:class:`PruneAt` is the sampler for a user's own loop (full set before epoch T, the kept
subset afterwards, deterministic and sharded like ``DistributedSampler``);
:func:`resolve_method_params` checks that a method can score from what T epochs record.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..errors import DataPruneError
from ..methods import get, score
from ..select import check_ratio
from ..select_rule import SelectionRule, select_by_rule
from .order import epoch_order, shard_size

#: Recordings a method needs at least, beyond the window rule (transitions need two).
MIN_RECORDINGS = {"forgetting": 2}
#: Largest window = recordings - this (Dyn-Unc: K-J windows, so J < K; DUAL: T-J+1, so J <= T).
WINDOW_SLACK = {"dual": 0}
DEFAULT_WINDOW = 10


def resolve_method_params(method: str, prune_at: int, recordings_per_epoch: int = 1, *,
                          params: Mapping[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """Parameters of ``method`` scoring from the first ``prune_at`` (T) epochs recorded
    ``recordings_per_epoch`` (m) times each, i.e. K = T*m recordings.

    Defaults filled in: ``window`` J = min(10, K - 1) (an explicit J may reach K for dual); ``epoch`` (EL2N) = the last recording
    K - 1; ``seed`` (random) = the training seed. Raises a one-line error when the method
    cannot score from K recordings (a window needs 2 <= J < K; forgetting needs K >= 2),
    reads run files (features, final logits) that a run pruned early does not have, or
    needs recordings (T = 0 is only for methods that read none).
    """
    m = get(method)
    params = dict(params or {})
    accepted = set(m.parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise DataPruneError(f"method {method!r} has no parameter {unknown[0]!r}; it takes "
                             f"{sorted(accepted) or 'no parameters'}")
    if m.files:
        raise DataPruneError(f"method {method!r} reads {', '.join(m.files)} of a finished scoring run; "
                             "pruning inside one run supports methods that score from recorded signals")
    k = prune_at * recordings_per_epoch
    what = f"prune_at={prune_at} records {k} epoch(s)" + (
        f" ({recordings_per_epoch} per epoch)" if recordings_per_epoch > 1 else "")
    if prune_at == 0 and m.needs:
        raise DataPruneError(f"prune_at=0 with method {method!r}; it needs recorded epochs, "
                             "expected prune_at >= 1 (0 is for methods that read no signal, e.g. random)")
    if "window" in accepted:
        j = params.setdefault("window", min(DEFAULT_WINDOW, k - 1))
        top = k - WINDOW_SLACK.get(method, 1)
        if top < 2:
            raise DataPruneError(f"{what}, too few for method {method!r}: its window needs 2 <= window <= "
                                 f"{'recordings' if top == k else 'recordings - 1'}; raise prune_at or use "
                                 "record_every=0.5")
        if isinstance(j, bool) or not isinstance(j, int) or not 2 <= j <= top:
            raise DataPruneError(f"window={j!r} does not fit: {what}; expected 2 <= window <= {top}")
    if k < MIN_RECORDINGS.get(method, 0 if not m.needs else 1):
        raise DataPruneError(f"{what}, too few for method {method!r}; expected at least "
                             f"{MIN_RECORDINGS.get(method, 1)} recordings")
    if "epoch" in accepted:
        if recordings_per_epoch > 1:
            raise DataPruneError(f"method {method!r} reads a single recording, which holds only part of the "
                                 f"samples with record_every < 1; expected record_every=1")
        params.setdefault("epoch", k - 1)
    if "seed" in accepted:
        params.setdefault("seed", seed)
    return params


#: how a run that prunes itself selects: the highest scores, NaN scores (never observed) pruned first
IN_RUN_RULE = SelectionRule("top-k", nan_policy="prune")


def prune_scores(dynamics: Any, method: str, prune_ratio: float, **params: Any) -> np.ndarray:
    """Keep indices (ascending) of ``method``'s scores on ``dynamics`` by :data:`IN_RUN_RULE`."""
    check_ratio(prune_ratio)
    return select_by_rule(score(method, dynamics, **params), IN_RUN_RULE, prune_ratio).keep


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PruneAt(torch.utils.data.Sampler[int]):
    """Sample indices of a run that prunes itself after epoch ``prune_at`` (T).

    Epochs ``< T`` (or until :meth:`set_keep`/:meth:`prune` is called) iterate all N
    samples; afterwards only the kept ones. Each epoch's order is
    :func:`~dataprune.train.order.epoch_order` for ``(seed, epoch)`` (call :meth:`set_epoch`
    first; the order ``dataprune``'s own loaders use), identical on every rank; under
    torch.distributed the epoch's list is padded to a multiple of the world size (or cut,
    ``drop_last``) and rank r takes every world-size-th entry from r, like
    ``DistributedSampler``. :attr:`recording` says whether this epoch should be recorded.

    Parameters
    ----------
    num_samples : int
        N, the size of the training set, >= 1.
    prune_at : int
        T, the number of scoring epochs on all the data, >= 0.
    seed : int
        Seeds each epoch's order (default 0).
    shuffle : bool
        Shuffle each epoch (default True); False keeps index order.
    rank : int | None
        This process's rank (default None: torch.distributed's, else 0).
    world_size : int | None
        The number of processes (default None: torch.distributed's, else 1).
    drop_last : bool
        Cut each epoch's list to a multiple of the world size instead of padding it
        (default False).

    Raises
    ------
    DataPruneError
        ``num_samples < 1``, ``prune_at < 0``, or a rank outside 0..world_size-1.
    """

    def __init__(self, num_samples: int, prune_at: int, *, seed: int = 0, shuffle: bool = True,
                 rank: int | None = None, world_size: int | None = None, drop_last: bool = False) -> None:
        if num_samples < 1:
            raise DataPruneError(f"num_samples={num_samples}; expected at least 1")
        if prune_at < 0:
            raise DataPruneError(f"prune_at={prune_at}; expected an epoch >= 0")
        r, w = _dist()
        self.rank, self.world_size = (r if rank is None else rank), (w if world_size is None else world_size)
        if not 0 <= self.rank < self.world_size:
            raise DataPruneError(f"rank={self.rank} with world_size={self.world_size}; expected 0 <= rank < world_size")
        self.num_samples, self.prune_at, self.seed = int(num_samples), int(prune_at), int(seed)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch = 0
        self.keep: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def recording(self) -> bool:
        """True in the scoring epochs (before T, while no subset is set)."""
        return self.keep is None and self.epoch < self.prune_at

    def set_keep(self, keep: np.ndarray | None) -> None:
        """Train on ``keep`` from now on.

        Parameters
        ----------
        keep : np.ndarray | None
            Sample indices to train on. Under torch.distributed, rank 0's ``keep`` is broadcast
            (other ranks may pass None).

        Raises
        ------
        DataPruneError
            ``keep`` is empty or holds an index outside 0..N-1.
        """
        if _dist()[1] > 1:
            box = [None if keep is None else np.asarray(keep, np.int64)]
            torch.distributed.broadcast_object_list(box, 0)
            keep = box[0]
        keep = np.unique(np.asarray(keep, dtype=np.int64))
        if keep.size == 0 or keep[0] < 0 or keep[-1] >= self.num_samples:
            raise DataPruneError(f"keep holds {keep.size} indices in [{keep.min(initial=0)}, "
                                 f"{keep.max(initial=0)}]; expected a non-empty subset of 0..{self.num_samples - 1}")
        self.keep = keep

    def prune(self, dynamics: Any, method: str, prune_ratio: float, **params: Any) -> np.ndarray:
        """Score the T recorded epochs, keep the best samples and train on them from the next epoch.

        Parameters
        ----------
        dynamics : Any
            The :class:`~dataprune.Dynamics` of the T recorded epochs (rank 0's store; other
            ranks may pass None).
        method : str
            A scoring method from :func:`~dataprune.list_methods`.
        prune_ratio : float
            r in [0, 1): ``N - round(r * N)`` samples are kept.
        **params : Any
            Method parameters, as in :func:`~dataprune.score`.

        Returns
        -------
        np.ndarray
            The keep indices, ascending.
        """
        keep = prune_scores(dynamics, method, prune_ratio, **params) if self.rank == 0 or dynamics is not None else None
        self.set_keep(keep)
        assert self.keep is not None
        return self.keep

    def _epoch_indices(self) -> np.ndarray:
        active = np.arange(self.num_samples, dtype=np.int64) if self.keep is None else self.keep
        return epoch_order(active, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle, rank=self.rank,
                           world_size=self.world_size, drop_last=self.drop_last).numpy()

    def __iter__(self) -> Iterator[int]:
        return iter(self._epoch_indices().tolist())

    def __len__(self) -> int:
        return shard_size(self.num_samples if self.keep is None else len(self.keep), self.world_size,
                          self.drop_last)
