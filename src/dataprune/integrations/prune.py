"""What the frameworks' prune-inside-one-run callbacks share (no framework imported here).

A :class:`~dataprune.PruneAt` sampler decides the epochs (record before T, the kept subset
after); :class:`InRunPrune` is what is scored at T, checked when the callback is built, and
:func:`prune_sampler` scores rank 0's store at T and hands the keep to every rank's sampler.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataPruneError
from ..methods import get
from ..record import Recorder
from ..select import check_ratio
from ..store import Dynamics
from ..train.prune_at import PruneAt, prune_scores, resolve_method_params


@dataclass(frozen=True)
class InRunPrune:
    """Score the first T recorded epochs with ``method`` (``params`` resolved, e.g. the
    window J = min(10, T-1)) and remove ``prune_ratio`` of the samples; ``signals`` are those
    to record (``prob``, ``correct`` and what the method reads)."""

    method: str
    prune_ratio: float
    params: dict[str, Any]
    signals: list[str]

    @classmethod
    def checked(cls, sampler: Any, method: str, prune_ratio: float,
                params: Mapping[str, Any] | None = None, signals: Sequence[str] | None = None) -> "InRunPrune":
        """A one-line error when ``sampler`` is not a :class:`~dataprune.PruneAt` with
        T >= 1, the ratio is not in (0, 1), or the method cannot score from T epochs of
        ``signals``."""
        if not isinstance(sampler, PruneAt):
            raise DataPruneError(f"sampler is a {type(sampler).__name__}; expected a dataprune.PruneAt "
                                 "(dp.PruneAt(len(train_set), prune_at=T)), the train dataloader's sampler")
        if sampler.prune_at < 1:
            raise DataPruneError(f"prune_at={sampler.prune_at}; expected T >= 1 recorded epochs (to prune "
                                 "before training, select a subset first and train on it)")
        check_ratio(prune_ratio)
        if not prune_ratio > 0:
            raise DataPruneError(f"prune_ratio={prune_ratio!r}; expected a fraction in (0, 1) to remove")
        needs = get(method).needs
        params = resolve_method_params(method, sampler.prune_at, params=params, seed=sampler.seed)
        wanted = list(dict.fromkeys(("prob", "correct", *needs))) if signals is None else list(signals)
        missing = [s for s in needs if s not in wanted]
        if missing:
            raise DataPruneError(f"signals={wanted} lack {missing}, which method {method!r} reads; "
                                 f"expected signals including {list(needs)}")
        return cls(method, float(prune_ratio), params, wanted)


def check_epochs(sampler: PruneAt, epochs: int | None, name: str) -> None:
    """Raise unless the run's ``epochs`` (the framework's setting ``name``) exceed T."""
    if epochs is not None and epochs <= sampler.prune_at:
        raise DataPruneError(f"{name}={epochs} with prune_at={sampler.prune_at}; expected more epochs than T "
                             "(T epochs on the full set, then the rest on the kept subset)")


def prune_sampler(sampler: PruneAt, recorder: Recorder, plan: InRunPrune) -> np.ndarray:
    """At the end of epoch T: close ``recorder``, score its store on rank 0 and make every
    rank's ``sampler`` draw the kept samples from the next epoch (rank 0's keep is
    broadcast by :meth:`~dataprune.PruneAt.set_keep`). Returns the keep indices (ascending)."""
    recorder.close()
    keep = None
    if recorder.rank == 0:  # only rank 0 holds the store
        keep = prune_scores(Dynamics.open(recorder.path), plan.method, plan.prune_ratio, **plan.params)
    sampler.set_keep(keep)
    return sampler.keep
