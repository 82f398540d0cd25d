"""The dynamics store: a directory of epoch-major ``.npy`` arrays plus ``meta.json``.

Layout (format version 1)::

    meta.json      {"format": "dataprune-dynamics", "version": 1, "num_samples": N,
                    "num_classes": C, "epochs": K_recorded, "capacity": K_capacity,
                    "signals": [...], "view": "clean"|"train", "digests": {...},
                    "fingerprint": "...", ...}
    labels.npy     (N,) int64, -1 where no label was seen
    <signal>.npy   (K_capacity, N), one row per epoch; only the first ``epochs`` rows are valid

``planned_epochs`` (the epochs the writer planned, or null) and ``finished`` (true once
the store holds them, or when the writer said recording is over: ``Recorder.finish()``)
tell a complete store from one still being written or cut short; see
:attr:`Dynamics.finished`. ``meta.json`` is replaced atomically after each finished epoch, so a crash never leaves a
store that claims more epochs than were written. ``digests`` (labels and one hash chain per
signal, see :mod:`dataprune.integrity`) make up the ``fingerprint``;
:meth:`Dynamics.verify` checks the content against them. Array files are allocated on
disk when created (:func:`new_npy`), so a full disk fails early with a clear error.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from numpy.lib.format import open_memmap

from .errors import DataPruneError, StoreError
from .fileio import atomic_write_json, clear_for_force, no_space_error, read_json, refuse_overwrite
from .history import HistoryMode
from .integrity import (check_range, fingerprint_of, initial_digest, int64_digest, next_digest,
                        state_digest)
from .window_std import window_std

FORMAT = "dataprune-dynamics"
VERSION = 1

#: dtype of every known signal; float signals use NaN and int8 signals -1 for "not observed".
SIGNAL_DTYPES: dict[str, np.dtype] = {
    "prob": np.dtype(np.float16),
    "correct": np.dtype(np.int8),
    "margin": np.dtype(np.float16),
    "el2n": np.dtype(np.float16),
    "entropy": np.dtype(np.float16),
    # last-layer GraNd, ||softmax - onehot|| * ||[features, 1]|| (needs update(..., features=))
    "grand": np.dtype(np.float16),
    # TDDS step d_t = sum_c p_t,c |log p_t,c - log p_t-1,c| (NaN at epoch 0 or if t-1 unseen)
    "tdds_d": np.dtype(np.float16),
}


def missing_value(dtype: np.dtype) -> float | int:
    """The "not observed" marker for a signal dtype: NaN for floats, -1 for integers."""
    return np.nan if np.issubdtype(dtype, np.floating) else -1


def resolve_store_path(path: str | os.PathLike) -> Path:
    """Accept either a store directory or a run directory holding ``dynamics/``."""
    path = Path(path)
    if not (path / "meta.json").exists() and (path / "dynamics" / "meta.json").exists():
        return path / "dynamics"
    return path


class Dynamics:
    """A read-only view of a dynamics store; open one with :meth:`open`.

    Signals are memory-mapped ``(K, N)`` arrays of the ``K`` valid epochs, e.g. ``dyn.prob``;
    nothing is loaded into memory until sliced.

    Parameters
    ----------
    path : Path
        The store directory.
    meta : dict[str, Any]
        Its parsed ``meta.json`` (:meth:`open` reads and validates it).

    Raises
    ------
    StoreError
        An array file is missing, truncated, or of the wrong dtype or shape, or the labels
        lie outside -1..C-1.
    """

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = meta
        self.num_samples: int = int(meta["num_samples"])
        self.num_classes: int = int(meta["num_classes"])
        self.epochs: int = int(meta["epochs"])
        self.signals: list[str] = list(meta["signals"])
        self.view: str = meta.get("view", "train")
        self._arrays: dict[str, np.ndarray] = {}
        self.labels: np.ndarray = self._load("labels", (self.num_samples,), np.dtype(np.int64))
        #: what the store keeps of the epochs, and so what it can answer (see :mod:`dataprune.history`)
        self.history = HistoryMode.from_stored(meta.get("keep_history", "full"))
        #: the history mode's public name, ``"full"`` or ``"window"`` (equal to ``self.history``)
        self.keep_history: HistoryMode = self.history
        self.window: int | None = meta.get("window")
        if not self.history.per_epoch:
            n, tag = (self.num_samples,), meta.get("sums", "a")
            self._unc_sum = self._load(f"unc_sum_{tag}", n, np.dtype(np.float64))
            self._unc_count = self._load(f"unc_count_{tag}", n, np.dtype(np.int32))
            self._ring = self._load("prob_ring", (int(self.window) + 1, self.num_samples),
                                    np.dtype(np.float16))
        lo, hi = (int(self.labels.min()), int(self.labels.max()))
        if lo < -1 or hi >= self.num_classes:
            raise StoreError(f"{path / 'labels.npy'} holds labels {lo}..{hi}; expected 0.."
                             f"{self.num_classes - 1} (or -1 = never seen)")
        for name in self.signals:
            full = self._load(name, None, SIGNAL_DTYPES.get(name))
            self._arrays[name] = full[: self.epochs]

    @property
    def planned_epochs(self) -> int | None:
        """The number of epochs the writer planned, or None if it did not say.

        Stores written before ``planned_epochs`` existed: their ``capacity``, which was the
        planned epochs, unless it is the default 64 (possibly doubled): then None."""
        if "planned_epochs" in self.meta or "finished" in self.meta:
            planned = self.meta.get("planned_epochs")
            return None if planned is None else int(planned)
        capacity = self.meta.get("capacity")
        if not isinstance(capacity, int) or (capacity >= 64 and capacity & (capacity - 1) == 0):
            return None
        return capacity

    @property
    def finished(self) -> bool | None:
        """True if the store is complete: it holds its planned epochs, or its writer marked it
        finished; False if it holds fewer (still being written, or cut short); None if
        neither is known (no planned epochs and not marked)."""
        if self.meta.get("finished") is True:
            return True
        planned = self.planned_epochs
        return None if planned is None else self.epochs >= planned

    def unfinished_note(self) -> str | None:
        """One line saying the store is unfinished (epochs recorded vs planned).

        Returns
        -------
        str | None
            The line, or None when the store is not known to be unfinished.
        """
        if self.finished is not False:
            return None
        how = ("rerun the same `dataprune import-official` to resume it" if self.meta.get("imported_from")
               else "still being written, or its run was cut short")
        return (f"store {self.path} is unfinished: {self.epochs} of {self.planned_epochs} planned epochs "
                f"recorded ({how}); results use the {self.epochs} recorded")

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Dynamics":
        """Open and validate a store.

        Parameters
        ----------
        path : str | os.PathLike
            A store directory, or a run directory holding ``dynamics/``.

        Returns
        -------
        Dynamics
            The read-only view.

        Raises
        ------
        StoreError
            No store at ``path``, or an unreadable or inconsistent one.
        """
        path = resolve_store_path(path)
        if not (path / "meta.json").exists():
            raise StoreError(f"no dynamics store at {path} (meta.json missing); "
                             "create one with `dataprune record` or dataprune.Recorder")
        try:
            meta = read_json(path / "meta.json")
        except DataPruneError as e:
            raise StoreError(str(e)) from None
        _validate_meta(path, meta)
        return cls(path, meta)

    def _load(self, name: str, shape: tuple[int, ...] | None, dtype: np.dtype | None) -> np.ndarray:
        file = self.path / f"{name}.npy"
        if not file.exists():
            raise StoreError(f"store {self.path} lacks {file.name} listed in meta.json")
        try:
            arr = np.load(file, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            raise StoreError(f"{file} is truncated or corrupted ({e})") from None
        if dtype is not None and arr.dtype != dtype:
            raise StoreError(f"{file} has dtype {arr.dtype}, expected {dtype}")
        if shape is not None and arr.shape != shape:
            raise StoreError(f"{file} has shape {arr.shape}, expected {shape}")
        if shape is None:
            if arr.ndim != 2 or arr.shape[1] != self.num_samples:
                raise StoreError(f"{file} has shape {arr.shape}, expected (K, {self.num_samples})")
            if arr.shape[0] < self.epochs:
                raise StoreError(f"{file} holds {arr.shape[0]} epochs but meta.json says "
                                 f"{self.epochs} were recorded")
        return arr

    def __getitem__(self, signal: str) -> np.ndarray:
        """The ``(K, N)`` array of ``signal`` over the recorded epochs."""
        try:
            return self._arrays[signal]
        except KeyError:
            if not self.history.per_epoch:
                raise StoreError(self.unavailable(f"signal {signal!r}")) from None
            raise StoreError(f"store {self.path} has no signal {signal!r}; "
                             f"it recorded {self.signals}") from None

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name not in self.__dict__.get("_arrays", {}):
            raise AttributeError(name)
        return self._arrays[name]

    def unavailable(self, what: str) -> str:
        """The message for what a store keeping no per-epoch history cannot answer.

        Parameters
        ----------
        what : str
            What was asked for, e.g. ``"signal 'margin'"``.

        Returns
        -------
        str
            The message, naming the store and its window.
        """
        return self.history.unavailable(self.path, self.window, what)

    def dyn_unc(self, window: int | None = None) -> np.ndarray:
        """Dyn-Unc scores of a ``keep_history="window"`` store, from its running sums and counts.

        A full store is scored by :func:`dataprune.methods.dyn_unc`
        (``dataprune.methods.dyn_unc(dyn, window)``).

        Parameters
        ----------
        window : int | None
            J; must be the window the store recorded (default None: that one).

        Returns
        -------
        np.ndarray
            (N,) float64, higher = more worth keeping; NaN where no window was usable.

        Raises
        ------
        StoreError
            The store keeps every epoch, ``window`` differs from the recorded one, or the store
            holds no more than J epochs.
        """
        if self.history.per_epoch:
            raise StoreError(f"store {self.path} keeps every epoch: score it with dataprune.methods.dyn_unc(dyn, window)")
        if window is not None and window != self.window:
            raise StoreError(self.unavailable(f"window={window}"))
        if self.epochs <= int(self.window):
            raise StoreError(f"window={self.window} with {self.epochs} recorded epochs; expected more than "
                             f"{self.window} epochs (K-J windows must be at least one)")
        count = np.asarray(self._unc_count)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, np.asarray(self._unc_sum) / np.maximum(count, 1), np.nan)

    @property
    def fingerprint(self) -> str:
        """Hash of everything recorded so far (labels and every signal; updated as each epoch
        is written); :meth:`verify` checks that the content still matches it."""
        return str(self.meta["fingerprint"])

    def verify(self, signals: Iterable[str] | None = None) -> None:
        """Check the content against the digests in ``meta.json`` and each value's range.

        ``labels.npy``, the signal list and the fingerprint are always checked, in O(N). Each
        checked signal is read once, row by row, like a method that scores it. A
        ``keep_history="window"`` store checks its ring and running sums instead.

        Parameters
        ----------
        signals : Iterable[str] | None
            The signals to read and hash (default None: all recorded; names the store lacks are
            skipped).

        Raises
        ------
        StoreError
            Naming the file that does not match.
        """
        self.digests_after(self.epochs, signals)

    def digests_after(self, epochs: int, signals: Iterable[str] | None = None) -> dict[str, str]:
        """Verify (see :meth:`verify`) and return the content digests after the first ``epochs`` epochs.

        Parameters
        ----------
        epochs : int
            The number of leading epochs.
        signals : Iterable[str] | None
            As in :meth:`verify`.

        Returns
        -------
        dict[str, str]
            Digest by name (``labels`` and each checked signal); ``fingerprint_of`` of them is
            the store's fingerprint after ``epochs`` epochs.

        Raises
        ------
        StoreError
            As :meth:`verify`.
        """
        meta_file = self.path / "meta.json"
        digests = self.meta.get("digests")
        if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
            raise StoreError(f"{meta_file} has no content digests (a store written by an older "
                             "dataprune); its content cannot be verified: record it again")
        ring = not self.history.per_epoch
        expected = {"labels", "state"} if ring else {"labels", *self.signals}
        if set(digests) != expected:
            raise StoreError(f"{meta_file} lists signals {self.signals} but its digests cover "
                             f"{sorted(set(digests) - {'labels'})}; meta.json was edited")
        if fingerprint_of(digests) != self.fingerprint:
            raise StoreError(f"{meta_file} has fingerprint {self.fingerprint} but its digests give "
                             f"{fingerprint_of(digests)}; meta.json was edited")
        if int64_digest(self.labels) != digests["labels"]:
            raise StoreError(f"{self.path / 'labels.npy'} does not match the store's fingerprint "
                             "(changed after it was written)")
        try:
            check_range("labels", self.labels, str(self.path / "labels.npy"), -1, self.num_classes - 1)
            if ring:
                self._verify_ring(digests["state"])
                return {"labels": digests["labels"], "state": digests["state"]}
            out = {"labels": self._labels_digest_after(epochs)}
            wanted = self.signals if signals is None else [s for s in signals if s in self.signals]
            for s in self.signals:
                d = initial_digest(self.num_samples, self.num_classes, s)
                out[s] = d if epochs == 0 else None
                if s not in wanted:
                    continue
                for e in range(self.epochs):
                    row = np.asarray(self._arrays[s][e])
                    check_range(s, row, f"{self.path / (s + '.npy')} epoch {e}")
                    d = next_digest(d, row)
                    if e + 1 == epochs:
                        out[s] = d
                if d != digests[s]:
                    raise StoreError(f"{self.path / (s + '.npy')} does not match the store's "
                                     "fingerprint (changed or corrupted after it was written)")
        except ValueError as e:
            if isinstance(e, StoreError):
                raise
            raise StoreError(str(e)) from None
        return {k: v for k, v in out.items() if v is not None}  # the signals checked

    def _labels_digest_after(self, epochs: int) -> str:
        """The labels digest after ``epochs`` epochs (labels learned from targets change it)."""
        history = self.meta.get("labels_history") or [[0, self.meta["digests"]["labels"]]]
        return str([d for k, d in history if k <= epochs][-1])

    def _verify_ring(self, digest: str) -> None:
        where = str(self.path / "prob_ring.npy")
        check_range("prob", self._ring, where)
        windows = max(0, self.epochs - int(self.window))
        check_range("unc_count", self._unc_count, where.replace("prob_ring", "unc_count"), 0, windows)
        check_range("unc_sum", self._unc_sum, where.replace("prob_ring", "unc_sum"), 0.0, float(windows))
        if state_digest([self._ring, self._unc_sum, self._unc_count]) != digest:
            raise StoreError(f"the ring or running sums of {self.path} do not match the store's "
                             "fingerprint (changed or corrupted after they were written)")

    def __repr__(self) -> str:
        return (f"Dynamics({str(self.path)!r}, N={self.num_samples}, K={self.epochs}, "
                f"signals={self.signals}, view={self.view!r})")


def _validate_meta(path: Path, meta: Any) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StoreError(f"{path / 'meta.json'} is not a dataprune dynamics store")
    if meta.get("version") != VERSION:
        raise StoreError(f"{path} has store format version {meta.get('version')}, "
                         f"this dataprune reads version {VERSION}")
    for key in ("num_samples", "num_classes", "epochs", "signals", "fingerprint"):
        if key not in meta:
            raise StoreError(f"{path / 'meta.json'} lacks the key {key!r}")
    for key, least in (("num_samples", 1), ("num_classes", 2), ("epochs", 0)):
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise StoreError(f"{path / 'meta.json'} has {key}={value!r}; expected an integer >= {least}")
    signals = meta["signals"]
    if (not isinstance(signals, list) or not all(isinstance(s, str) for s in signals)
            or len(set(signals)) != len(signals)):
        raise StoreError(f"{path / 'meta.json'} has signals={signals!r}; expected a list of distinct names")
    if not isinstance(meta["fingerprint"], str):
        raise StoreError(f"{path / 'meta.json'} has fingerprint={meta['fingerprint']!r}; expected a string")
    if "finished" in meta and not isinstance(meta["finished"], bool):
        raise StoreError(f"{path / 'meta.json'} has finished={meta['finished']!r}; expected true or false")
    planned = meta.get("planned_epochs")
    if planned is not None and (isinstance(planned, bool) or not isinstance(planned, int) or planned < 1):
        raise StoreError(f"{path / 'meta.json'} has planned_epochs={planned!r}; expected an integer >= 1 or null")
    try:
        mode = HistoryMode.from_stored(meta.get("keep_history", "full"), str(path / "meta.json"))
    except DataPruneError as e:
        raise StoreError(str(e)) from None
    if not mode.per_epoch and not isinstance(meta.get("window"), int):
        raise StoreError(f"{path / 'meta.json'} has keep_history={mode.stored!r} but no integer 'window'")


def new_npy(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
    """A new zero-filled ``.npy`` memory map whose disk blocks are allocated now.

    Writes through a map of a sparse file fail with SIGBUS (a bare "Bus error") when the
    disk fills; allocating up front (``posix_fallocate``, or writing zeros where the file
    system lacks it) turns a full disk into a one-line error here, before any epoch.
    """
    try:
        arr = open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        size, offset = path.stat().st_size, arr.offset
        with open(path, "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, size)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                zeros = bytes(1 << 24)  # the data region is all zeros yet: write them for real
                for start in range(offset, size, len(zeros)):
                    os.pwrite(f.fileno(), zeros[: min(len(zeros), size - start)], start)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space_error(int(np.prod(shape)) * np.dtype(dtype).itemsize, path) from None
        raise
    return arr


#: the array files a store writer creates before its first ``meta.json``
_ARRAY_FILES = {f"{s}.npy" for s in [*SIGNAL_DTYPES, "labels", "prob_ring", "unc_sum_a", "unc_sum_b",
                                     "unc_count_a", "unc_count_b"]}


def is_store_dir(path: Path) -> bool:
    """Whether ``path`` holds a dataprune dynamics store (its ``meta.json`` says so), or the
    array files of one whose creation was cut short (before its first ``meta.json``)."""
    try:
        meta = read_json(path / "meta.json")
    except DataPruneError:
        names = {e.name for e in path.iterdir()} if path.is_dir() else set()
        return bool(names) and names <= _ARRAY_FILES
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def prepare_store_dir(path: Path, force: bool) -> None:
    """Create ``path`` for a new store: an existing store is refused without ``force`` and
    replaced with it; a directory that is neither empty nor a store is never deleted."""
    if (path / "meta.json").exists():
        refuse_overwrite(path, force)
    if force:
        clear_for_force(path, is_store_dir, "dataprune dynamics store")
    path.mkdir(parents=True, exist_ok=True)


def _set_digests(meta: dict[str, Any], digests: Mapping[str, str]) -> None:
    """Store the content ``digests`` and the fingerprint made of them in ``meta``."""
    meta["digests"] = dict(digests)
    meta["fingerprint"] = fingerprint_of(digests)
    meta.setdefault("labels_history", [[0, digests["labels"]]])


def _plan(planned_epochs: int | None) -> dict[str, Any]:
    """The ``meta.json`` fields of a new store planned to hold ``planned_epochs`` epochs."""
    if planned_epochs is not None and (isinstance(planned_epochs, bool) or int(planned_epochs) < 1):
        raise StoreError(f"planned_epochs={planned_epochs!r}; expected an integer >= 1 or None")
    return {"planned_epochs": None if planned_epochs is None else int(planned_epochs), "finished": False}


def finish_store(writer: "StoreWriter | RingStoreWriter") -> None:
    """Record in ``writer``'s ``meta.json`` that the store is finished."""
    if writer.meta.get("finished") is not True:
        writer.meta["finished"] = True
        atomic_write_json(writer.path / "meta.json", writer.meta)


def merge_labels(meta: dict[str, Any], labels: np.ndarray, labels_seen: np.ndarray | None) -> None:
    """Fill still-unknown (-1) entries of the (N,) ``labels`` memmap from ``labels_seen``;
    updates ``meta``'s labels digest and its history (keyed by the epoch count after this one)."""
    if labels_seen is None:
        return
    new = (labels < 0) & (labels_seen >= 0)
    if new.any():
        labels[new] = labels_seen[new]
        labels.flush()
        meta["digests"]["labels"] = d = int64_digest(labels)
        meta.setdefault("labels_history", []).append([int(meta["epochs"]) + 1, d])


class StoreWriter:
    """Creates a store and appends one epoch at a time; used by :class:`~dataprune.Recorder`.

    Each :meth:`write_epoch` is one contiguous write per signal, then ``meta.json`` is
    replaced atomically. Capacity doubles (one copy) if more epochs arrive than planned.
    """

    def __init__(self, path: str | os.PathLike, *, num_samples: int, num_classes: int,
                 signals: Iterable[str], capacity: int = 64, view: str = "train",
                 labels: np.ndarray | None = None, extra_meta: Mapping[str, Any] | None = None,
                 force: bool = False, planned_epochs: int | None = None):
        self.path = Path(path)
        signals = list(signals)
        unknown = [s for s in signals if s not in SIGNAL_DTYPES]
        if unknown:
            raise StoreError(f"unknown signal(s) {unknown}; known: {sorted(SIGNAL_DTYPES)}")
        prepare_store_dir(self.path, force)
        self.num_samples = int(num_samples)
        self.capacity = max(1, int(capacity))
        self.signals = signals
        self.arrays = {s: self._new_array(s, self.capacity) for s in signals}
        self.labels = new_npy(self.path / "labels.npy", np.int64, (self.num_samples,))
        self.labels[:] = -1 if labels is None else np.asarray(labels, dtype=np.int64)
        self.labels.flush()
        self.meta: dict[str, Any] = {
            **dict(extra_meta or {}),
            "format": FORMAT, "version": VERSION, "num_samples": self.num_samples,
            "num_classes": int(num_classes), "epochs": 0, "capacity": self.capacity,
            "signals": signals, "view": view, **_plan(planned_epochs),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        digests = {s: initial_digest(self.num_samples, int(num_classes), s) for s in signals}
        _set_digests(self.meta, {**digests, "labels": int64_digest(self.labels)})
        atomic_write_json(self.path / "meta.json", self.meta)

    @classmethod
    def open_existing(cls, path: str | os.PathLike, *, epochs: int | None = None,
                      fingerprint: str | None = None) -> "StoreWriter":
        """Reopen the store at ``path`` to append more epochs (resuming a scoring run).

        ``epochs`` truncates the store to its first ``epochs`` epochs: a crash between
        writing an epoch and checkpointing the training state leaves one epoch more in the
        store than in the checkpoint. Rows beyond ``epochs`` are ignored and later
        overwritten; the whole store is verified first (:meth:`Dynamics.verify`), the
        fingerprint is recomputed from the kept rows and, if ``fingerprint`` is given (the
        one saved with the checkpoint), must match it.
        """
        dyn = Dynamics.open(path)
        path = dyn.path
        k = dyn.epochs if epochs is None else int(epochs)
        if not 0 <= k <= dyn.epochs:
            raise StoreError(f"store {path} holds {dyn.epochs} epochs; cannot resume it after epoch {k} "
                             f"(expected 0..{dyn.epochs})")
        dyn.history.check_resumable(path)
        digests = dyn.digests_after(k)  # verifies every recorded row first
        fp = fingerprint_of(digests)
        if fingerprint is not None and fp != fingerprint:
            raise StoreError(f"store {path} does not match the checkpoint: its first {k} epochs have "
                             f"fingerprint {fp}, the checkpoint expects {fingerprint}")
        unknown = [s for s in dyn.signals if s not in SIGNAL_DTYPES]
        if unknown:
            raise StoreError(f"store {path} has unknown signal(s) {unknown}; known: {sorted(SIGNAL_DTYPES)}")
        self = cls.__new__(cls)
        self.path = path
        self.num_samples = dyn.num_samples
        self.signals = list(dyn.signals)
        planned = dyn.planned_epochs
        del dyn  # drop the read-only maps before reopening for writing
        self.arrays = {s: np.load(path / f"{s}.npy", mmap_mode="r+") for s in self.signals}
        self.labels = np.load(path / "labels.npy", mmap_mode="r+")
        # After a crash inside _grow, arrays may differ in capacity: use the smallest.
        self.capacity = min(a.shape[0] for a in self.arrays.values())
        self.meta = {**read_json(path / "meta.json"), "epochs": k, "capacity": self.capacity,
                     "planned_epochs": planned, "finished": False}  # more epochs to come
        # labels learned in a discarded epoch stay: the digest follows the labels now held
        history = [[e, d] for e, d in self.meta.get("labels_history", []) if e <= k]
        now = int64_digest(self.labels)
        self.meta["labels_history"] = history + ([[k, now]] if not history or history[-1][1] != now else [])
        _set_digests(self.meta, {**digests, "labels": now})
        atomic_write_json(path / "meta.json", self.meta)
        return self

    def finish(self) -> None:
        """Mark the store finished (recording is over, whatever ``planned_epochs`` said)."""
        finish_store(self)

    def _new_array(self, signal: str, capacity: int) -> np.ndarray:
        file = self.path / f"{signal}.npy"
        return new_npy(file, SIGNAL_DTYPES[signal], (capacity, self.num_samples))

    def _grow(self) -> None:
        new_capacity = self.capacity * 2
        k = self.meta["epochs"]
        for s, old in self.arrays.items():
            tmp = self.path / f".{s}.grow.npy"
            new = new_npy(tmp, old.dtype, (new_capacity, self.num_samples))
            new[:k] = old[:k]
            new.flush()
            del new
            os.replace(tmp, self.path / f"{s}.npy")
            self.arrays[s] = np.load(self.path / f"{s}.npy", mmap_mode="r+")
        self.capacity = new_capacity
        self.meta["capacity"] = new_capacity

    def write_epoch(self, rows: Mapping[str, np.ndarray], labels_seen: np.ndarray | None = None) -> int:
        """Append one epoch: ``rows[signal]`` is an ``(N,)`` array. Returns the epoch count."""
        k = self.meta["epochs"]
        if k >= self.capacity:
            self._grow()
        written = {}
        for s in self.signals:
            row = np.ascontiguousarray(rows[s], dtype=self.arrays[s].dtype)
            self.arrays[s][k] = row
            self.arrays[s].flush()
            written[s] = row
        merge_labels(self.meta, self.labels, labels_seen)
        self.meta["epochs"] = k + 1
        digests = self.meta["digests"]
        _set_digests(self.meta, {**digests, **{s: next_digest(digests[s], written[s]) for s in self.signals}})
        atomic_write_json(self.path / "meta.json", self.meta)
        return k + 1


class RingStoreWriter:
    """A ``keep_history="window"`` store: O(N*J) memory and disk, whatever K becomes.

    Files: ``prob_ring.npy`` (J+1, N) float16, epoch ``e`` in row ``e % (J+1)``;
    ``unc_sum_{a,b}.npy`` (N,) float64 and ``unc_count_{a,b}.npy`` (N,) int32: the running sum
    of the std of every finished window (Eq. 2) and the number of usable windows, double
    buffered (``meta["sums"]`` names the valid pair), so a crash between epochs never leaves
    sums that disagree with ``meta["epochs"]``. When epoch ``e >= J`` arrives, window
    ``e-J`` (epochs e-J..e-1) becomes one of the K-J windows of Eq. 3 and is added.
    """

    def __init__(self, path: str | os.PathLike, *, num_samples: int, num_classes: int,
                 window: int, view: str = "train", labels: np.ndarray | None = None,
                 extra_meta: Mapping[str, Any] | None = None, force: bool = False,
                 planned_epochs: int | None = None):
        window = HistoryMode.WINDOW.check_window(window)
        self.path = Path(path)
        prepare_store_dir(self.path, force)
        self.num_samples = n = int(num_samples)
        self.window = int(window)
        self.signals = ["prob"]
        self.ring = new_npy(self.path / "prob_ring.npy", np.float16, (self.window + 1, n))
        self.ring[:] = np.nan
        self.sums = {}
        for tag in ("a", "b"):
            s = new_npy(self.path / f"unc_sum_{tag}.npy", np.float64, (n,))
            c = new_npy(self.path / f"unc_count_{tag}.npy", np.int32, (n,))
            s[:] = 0.0
            c[:] = 0
            self.sums[tag] = (s, c)
        self.labels = new_npy(self.path / "labels.npy", np.int64, (n,))
        self.labels[:] = -1 if labels is None else np.asarray(labels, dtype=np.int64)
        for a in (self.ring, self.labels, *self.sums["a"], *self.sums["b"]):
            a.flush()
        self.meta: dict[str, Any] = {
            **dict(extra_meta or {}),
            "format": FORMAT, "version": VERSION, "num_samples": n,
            "num_classes": int(num_classes), "epochs": 0, "signals": [],
            "keep_history": HistoryMode.WINDOW.stored, "window": self.window, "recorded_signals": ["prob"],
            "sums": "a", "view": view, **_plan(planned_epochs),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _set_digests(self.meta, {"labels": int64_digest(self.labels), "state": self._state_digest("a")})
        atomic_write_json(self.path / "meta.json", self.meta)

    def finish(self) -> None:
        """Mark the store finished (recording is over, whatever ``planned_epochs`` said)."""
        finish_store(self)

    def _state_digest(self, tag: str) -> str:
        return state_digest([self.ring, *self.sums[tag]])

    def write_epoch(self, rows: Mapping[str, np.ndarray], labels_seen: np.ndarray | None = None,
                    chunk: int = 1 << 20) -> int:
        """Fold one epoch's ``rows["prob"]`` (N,) into the ring and the running sums."""
        e = int(self.meta["epochs"])
        j, n = self.window, self.num_samples
        old_tag = self.meta["sums"]
        new_tag = "b" if old_tag == "a" else "a"
        old_s, old_c = self.sums[old_tag]
        new_s, new_c = self.sums[new_tag]
        # ring rows of epochs e-J..e-1 in epoch order (the order fixes float rounding only)
        order = [(e - j + i) % (j + 1) for i in range(j)]
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            s, c = old_s[a:b].copy(), old_c[a:b].copy()
            if e >= j:
                std, usable = window_std(self.ring[order, a:b])
                s[usable] += std[usable]
                c += usable
            new_s[a:b] = s
            new_c[a:b] = c
        new_s.flush()
        new_c.flush()
        row = np.ascontiguousarray(rows["prob"], dtype=np.float16)
        self.ring[e % (j + 1)] = row  # overwrites epoch e-J-1, which no state still needs
        self.ring.flush()
        merge_labels(self.meta, self.labels, labels_seen)
        self.meta.update(epochs=e + 1, sums=new_tag)
        _set_digests(self.meta, {**self.meta["digests"], "state": self._state_digest(new_tag)})
        atomic_write_json(self.path / "meta.json", self.meta)
        return e + 1
