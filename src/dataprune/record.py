"""Recording training dynamics: ``(indices, logits, targets)`` per batch -> dynamics store.

:class:`Recorder` coordinates the pieces in :mod:`dataprune.recording` (signal maths, input
checks, the per-epoch device table, the rank merge, the coverage check) with a store writer.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from .errors import DataPruneError
from .history import HistoryMode
from .recording.checks import (check_batch, check_settings, raise_if_bad, refuse_empty_epoch,
                               refuse_probabilities)
from .recording.coverage import CoverageCheck
from .recording.merge import dist_rank_world, merge_device, merge_ranks
from .recording.signals import ALL_SIGNALS, DEFAULT_SIGNALS, EXTRA_SIGNALS, PROBE_UPDATES, SIGNALS
from .recording.table import EpochTable
from .recording.tdds import check_state_size
from .recording.with_index import WithIndex
from .store import RingStoreWriter, StoreWriter

__all__ = ["Recorder", "WithIndex", "SIGNALS", "DEFAULT_SIGNALS", "ALL_SIGNALS", "EXTRA_SIGNALS",
           "TDDS_D_STATE_LIMIT"]

#: bytes of device memory ``tdds_d`` may use for its state (N*C*2, plus N*C*8 for the merge
#: under torch.distributed); larger runs are refused up front instead of failing with an
#: out-of-memory error mid-epoch. Raise it if your device has the room.
TDDS_D_STATE_LIMIT = 16 * 2**30


class Recorder:
    """Record per-sample signals each epoch into a memory-mapped dynamics store.

    Parameters
    ----------
    num_samples : int
        N, the size of the training set; sample indices are 0..N-1.
    out : str | os.PathLike
        Store directory to create (refused if it holds a store, unless ``force``).
    num_classes : int
        C; targets must lie in 0..C-1.
    signals : Iterable[str]
        Names from :data:`SIGNALS` or :data:`EXTRA_SIGNALS`; ``prob`` (labelled-class
        probability) and ``correct`` by default.
    epochs : int | None
        Planned number of epochs K (the store's capacity; it grows if exceeded). The store
        counts as finished once it holds K epochs (or after :meth:`finish`); without
        ``epochs`` (default None) only :meth:`finish` (or leaving a ``with`` block) marks it
        finished.
    view : str
        ``"train"`` (default) or ``"clean"``, recorded in ``meta.json`` for provenance.
    labels : np.ndarray | None
        Optional (N,) labels known up front; otherwise taken from the targets seen.
    nan_policy : str
        ``"raise"`` (default) rejects NaN/inf logits; ``"omit"`` leaves those samples
        unobserved for the epoch.
    meta : Mapping[str, Any] | None
        Extra entries for the store's ``meta.json`` (provenance).
    force : bool
        Replace an existing store at ``out`` (default False: refused).
    keep_history : str
        ``"full"`` (default) keeps every epoch, (K, N) per signal; ``"window"`` keeps only
        what Dyn-Unc with ``window`` needs (the last J+1 epochs of ``prob`` and running sums:
        O(N*J) memory and disk, independent of K); such a store scores only ``dyn-unc`` with
        that window (see :mod:`dataprune.history`). ``"none"``, its old name, still works
        with a DeprecationWarning.
    window : int
        J for ``keep_history="window"`` (default 10; ignored otherwise).

    Raises
    ------
    DataPruneError
        A bad setting (names the value and what was expected), or an existing store at
        ``out`` without ``force``.

    Notes
    -----
    Distributed (``torchrun``, DDP): construct and call the recorder identically on every
    rank, each rank passing its own batches. Once per epoch, :meth:`end_epoch` merges the
    ranks' buffers with collectives on the default process group (every rank must call it);
    only rank 0 creates and writes the store, other ranks never touch the disk. A sample
    seen by several ranks in one epoch (DistributedSampler pads with duplicates) gets the
    value of the highest rank that saw it, i.e. the result equals one process recording the
    ranks' batches in rank order (last wins; for ``tdds_d``, whose first occurrence wins, the
    lowest rank); samples no rank saw stay unobserved.

    One epoch's values stay on the logits' device (no host sync per step, see
    :class:`~dataprune.recording.table.EpochTable`) and are written to disk once per epoch by
    :meth:`end_epoch`; :meth:`update` costs O(B log B) per batch of B, independent of N.
    """

    def __init__(self, num_samples: int, out: str | os.PathLike, num_classes: int, *,
                 signals: Iterable[str] = DEFAULT_SIGNALS, epochs: int | None = None,
                 view: str = "train", labels: np.ndarray | None = None,
                 nan_policy: str = "raise", meta: Mapping[str, Any] | None = None,
                 force: bool = False, keep_history: str = "full", window: int = 10,
                 _resumed: StoreWriter | None = None):
        signals, labels = check_settings(num_samples, num_classes, signals, view, nan_policy, labels,
                                         None if _resumed is None else _resumed.path)
        mode = HistoryMode.parse(keep_history, depth=2)
        signals = mode.check_signals(signals, DEFAULT_SIGNALS)
        self.num_samples, self.num_classes = int(num_samples), int(num_classes)
        self.signals, self.nan_policy = signals, nan_policy
        self.rank, self.world_size = dist_rank_world()
        if "tdds_d" in signals:
            check_state_size(self.num_samples, self.num_classes, self.world_size, TDDS_D_STATE_LIMIT)
        self._out = out
        self._writer: StoreWriter | RingStoreWriter | None = _resumed
        if _resumed is None and self.rank == 0:  # other ranks never touch the disk
            common = dict(num_samples=self.num_samples, num_classes=self.num_classes, view=view,
                          labels=labels, extra_meta=meta, force=force, planned_epochs=epochs)
            if mode.per_epoch:
                self._writer = StoreWriter(out, signals=signals, capacity=epochs or 64, **common)
            else:
                self._writer = RingStoreWriter(out, window=mode.check_window(window), **common)
        #: the number of recordings (end_epoch calls) the store holds
        self.recordings = int(_resumed.meta["epochs"]) if _resumed is not None else 0
        self._table: EpochTable | None = None  # allocated on the logits' device by the first update
        self._carried_state: dict[str, torch.Tensor] | None = None
        self._probe_left = PROBE_UPDATES
        self._coverage = CoverageCheck(self.num_samples, self.num_classes)

    @classmethod
    def resume(cls, out: str | os.PathLike, *, epochs: int | None = None,
               fingerprint: str | None = None, nan_policy: str = "raise") -> "Recorder":
        """Reopen the store at ``out`` and continue recording after its first ``epochs`` epochs.

        Parameters
        ----------
        out : str | os.PathLike
            The store directory to reopen.
        epochs : int | None
            The epochs saved with the training checkpoint being resumed (default: all the store
            holds); an extra epoch written after that checkpoint is discarded.
        fingerprint : str | None
            The store's :attr:`fingerprint` saved with that checkpoint; the kept epochs must
            match it.
        nan_policy : str
            ``"raise"`` (default) or ``"omit"``, as for a new :class:`Recorder`.

        Returns
        -------
        Recorder
            A recorder appending to the store.

        Raises
        ------
        StoreError
            The store does not match the checkpoint, fails verification, or did not keep every
            epoch (see :meth:`~dataprune.store.StoreWriter.open_existing`, which verifies the
            store's content first).

        Notes
        -----
        Labels first seen in a discarded epoch stay in ``labels.npy``.
        """
        if nan_policy not in ("raise", "omit"):
            raise DataPruneError(f"nan_policy={nan_policy!r}; expected 'raise' or 'omit'")
        writer = StoreWriter.open_existing(out, epochs=epochs, fingerprint=fingerprint)
        return cls(writer.num_samples, out, int(writer.meta["num_classes"]), signals=writer.signals,
                   nan_policy=nan_policy, _resumed=writer)

    @property
    def epoch(self) -> int:
        """Deprecated alias of :attr:`recordings` (it counts recordings, not training epochs)."""
        warnings.warn("Recorder.epoch is deprecated: use Recorder.recordings (the number of recordings "
                      "the store holds)", DeprecationWarning, stacklevel=2)
        return self.recordings

    def state_dict(self) -> dict[str, torch.Tensor]:
        """State carried from one epoch to the next, for exact resumption.

        Returns
        -------
        dict[str, torch.Tensor]
            CPU tensors: ``tdds_d``'s previous log-softmax (N, C) float16 and its epoch stamps;
            empty without ``tdds_d``.
        """
        return self._table.tdds.state_dict() if self._table is not None and self._table.tdds else {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`; applied when the buffers are allocated (first update).

        Parameters
        ----------
        state : Mapping[str, torch.Tensor]
            What :meth:`state_dict` returned.
        """
        self._carried_state = dict(state) or None

    @property
    def path(self) -> os.PathLike:
        return self._writer.path if self._writer is not None else Path(self._out)

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the store after the last written epoch (see ``Dynamics.fingerprint``)."""
        return str(self._writer.meta["fingerprint"])

    def _allocate(self, device: torch.device) -> None:
        self._table = EpochTable(self.num_samples, self.num_classes, self.signals, device, self._carried_state)

    def _raise_if_bad(self, bad: torch.Tensor, indices: torch.Tensor | None = None,
                      targets: torch.Tensor | None = None) -> None:
        raise_if_bad(bad, self.num_samples, self.num_classes, self.nan_policy, indices, targets)

    def update(self, indices: torch.Tensor | np.ndarray | Sequence[int], logits: torch.Tensor,
               targets: torch.Tensor | np.ndarray | Sequence[int], *,
               features: torch.Tensor | None = None) -> None:
        """Record one batch.

        Parameters
        ----------
        indices : torch.Tensor | np.ndarray | Sequence[int]
            (B,) sample indices in 0..N-1.
        logits : torch.Tensor
            (B, C) logits (not probabilities), on any device; bfloat16/float16 (e.g. under
            ``torch.autocast``) is fine: the signals are computed in float32.
        targets : torch.Tensor | np.ndarray | Sequence[int]
            (B,) class labels in 0..C-1.
        features : torch.Tensor | None
            (B, D) input of the last linear layer, required by the ``grand`` signal and
            ignored otherwise.

        Raises
        ------
        DataPruneError
            Indices or targets out of range, NaN/inf logits under ``nan_policy="raise"`` (on the
            GPU: at :meth:`end_epoch`), or probabilities passed instead of logits (the first
            batches are checked, one host sync each).

        Notes
        -----
        If an index appears twice in one epoch, the last value wins (for ``tdds_d`` the first);
        samples never passed in an epoch stay unobserved.
        """
        logits = logits.detach()
        device = logits.device
        indices, targets, features = check_batch(indices, logits, targets, features, self.num_classes,
                                                 "grand" in self.signals)
        if self._table is None:
            self._allocate(device)
        table = self._table
        indices, targets = indices.to(table.device, torch.int64), targets.to(table.device, torch.int64)
        eps = torch.finfo(logits.dtype).eps  # bf16/fp16 logits: signals computed in float32
        batch, finite, ok, dest = table.place(indices, targets, logits.to(table.device, torch.float32))
        if self._probe_left:  # the first batches only: one host sync each
            self._probe_left = 0 if len(logits) >= 2 else self._probe_left - 1
            refuse_probabilities(batch, eps)
        if device.type != "cpu":
            table.bad |= ~ok.all(1)  # checked once per epoch, in end_epoch: no host sync here
        elif not ok.all():
            self._raise_if_bad(~ok.all(1), indices, targets)
        table.write(dest, batch, finite, features, self.recordings)

    def epoch_values(self) -> dict[str, np.ndarray]:
        """This epoch's values on the host (one sync).

        Returns
        -------
        dict[str, np.ndarray]
            An (N,) array per signal, plus ``labels``.
        """
        return self._table.host_values()

    def end_epoch(self) -> int:
        """Write the finished epoch to the store.

        Under torch.distributed every rank must call it: the ranks' values are merged here and
        only rank 0 writes. Samples still unseen once a whole epoch has passed are reported once,
        as a warning on the ``dataprune.record`` logger (see
        :class:`~dataprune.recording.coverage.CoverageCheck`).

        Returns
        -------
        int
            The number of recordings written.

        Raises
        ------
        DataPruneError
            The epoch recorded no sample (nothing is written: a second ``end_epoch`` would
            otherwise add an empty epoch that shifts every later Dyn-Unc window, see
            :func:`~dataprune.recording.checks.refuse_empty_epoch`), or an update on the GPU held
            an index or target out of range, or NaN/inf logits under ``nan_policy="raise"``.
        """
        if self.world_size > 1:
            if self._table is None:
                self._allocate(merge_device())
            merge_ranks(self._table, self.rank, self.world_size, self.recordings)
            if self.rank != 0:
                self._raise_if_bad(self._table.bad.cpu())
                refuse_empty_epoch(self._table.labels_seen(), self.recordings)
                self._table.clear()
                self.recordings += 1
                return self.recordings
        if self._table is None:
            refuse_empty_epoch(None, self.recordings)
        if self._table.device.type != "cpu" or self.world_size > 1:
            self._raise_if_bad(self._table.bad.cpu())
        rows = self._table.host_values()
        labels = rows.pop("labels")
        refuse_empty_epoch(labels, self.recordings)
        self._coverage.add(labels >= 0)
        self._table.clear()
        self.recordings = self._writer.write_epoch(rows, labels)
        return self.recordings

    def finish(self) -> None:
        """Mark the store finished: recording is over. Needed only when stopping before the
        planned ``epochs`` (early stopping) or when none were planned (``dataprune select``
        warns about an unfinished store). Every rank may call it (rank 0 writes)."""
        if self._writer is not None:
            self._writer.finish()

    def close(self) -> None:
        """Release buffers; the store on disk is already complete after each ``end_epoch``
        (``close`` does not :meth:`finish` it: it may be called after a failure)."""
        self._table = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        """Leaving a ``with`` block normally finishes the store (see :meth:`finish`); an
        exception leaves it unfinished."""
        if exc_type is None:
            self.finish()
        self.close()
