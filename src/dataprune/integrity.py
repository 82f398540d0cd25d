"""Content digests and value ranges of a dynamics store: what its fingerprint is made of.

A store's ``meta.json`` holds ``digests``: one running digest per signal (a hash chain over
its rows, one row = one epoch: ``d_k = H(d_{k-1} || row_k)``, starting from a digest of N, C
and the signal's name), ``labels`` (a hash of ``labels.npy``) and, for a
``keep_history="none"`` store, ``state`` (a hash of its ring and running sums). The
``fingerprint`` is a hash of all of them, so it changes when any content changes.

Verifying a signal reads it once (rows in order: one contiguous read each) and hashes it,
about as much work as scoring a method that reads it. :func:`check_range` rejects values a
signal cannot take (``prob`` outside [0, 1], ``correct`` outside {-1, 0, 1}, ...).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Mapping

import numpy as np

#: inclusive (low, high) of each signal's observed values; NaN (float) or -1 (int8) = unobserved.
#: el2n = ||softmax - onehot||_2 <= sqrt(2) (plus float16 rounding).
SIGNAL_RANGES: dict[str, tuple[float, float]] = {
    "prob": (0.0, 1.0), "correct": (0, 1), "margin": (-np.inf, np.inf),
    "el2n": (0.0, float(np.sqrt(2)) + 2 ** -9), "entropy": (0.0, np.inf),
    "grand": (0.0, np.inf), "tdds_d": (0.0, np.inf),
}


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def int64_digest(values: np.ndarray) -> str:
    """Digest of integers as int64: labels (N,) (``config.json``'s ``train_labels_digest`` is
    the same) and keep files' indices (``keep_digest`` in their manifest)."""
    return _hash(np.ascontiguousarray(values, dtype=np.int64).tobytes())


def initial_digest(num_samples: int, num_classes: int, signal: str) -> str:
    """The digest of ``signal`` in a store with 0 epochs."""
    return _hash(f"{num_samples}:{num_classes}:{signal}".encode())


def next_digest(previous: str, row: np.ndarray) -> str:
    """The digest of a signal after appending one epoch's (N,) ``row`` (in the store's dtype)."""
    h = hashlib.blake2b(previous.encode(), digest_size=16)
    h.update(memoryview(np.ascontiguousarray(row)).cast("B"))
    return h.hexdigest()


def state_digest(arrays: list[np.ndarray]) -> str:
    """Digest of the ring and running sums of a ``keep_history="none"`` store."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


def array_digest(arr: np.ndarray, chunk_bytes: int = 1 << 24) -> str:
    """Digest of an array's dtype, shape and values in C order, read in row blocks of about
    ``chunk_bytes`` (a memory map is never loaded whole): the final outputs' digests
    (``final_outputs.json``, see :mod:`dataprune.run_outputs`)."""
    arr = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
    h = hashlib.blake2b(f"{arr.dtype.str}:{tuple(arr.shape)}".encode(), digest_size=16)
    if arr.ndim == 0 or arr.size == 0:
        h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
        return h.hexdigest()
    row_bytes = max(1, arr[0].size * arr.itemsize)
    step = max(1, chunk_bytes // row_bytes)
    for a in range(0, arr.shape[0], step):
        h.update(memoryview(np.ascontiguousarray(arr[a:a + step])).cast("B"))
    return h.hexdigest()


def file_bytes_digest(path: str | os.PathLike, chunk_bytes: int = 1 << 24, *,
                      new: Callable[[], Any] = lambda: hashlib.blake2b(digest_size=16)) -> str:
    """Hex digest of a file's bytes, read in blocks, with the hash ``new()`` (the source files
    of an import, to tell them on a resume; ``hashlib.sha256`` for a run's checkpoints)."""
    h = new()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def fingerprint_of(digests: Mapping[str, str]) -> str:
    """The store fingerprint: a digest of all content digests (labels, every signal)."""
    return _hash(json.dumps(sorted(digests.items())).encode())


def check_range(signal: str, row: np.ndarray, where: str, low: float | None = None,
                high: float | None = None) -> None:
    """Raise ValueError naming ``where`` if ``row`` holds a value ``signal`` cannot take.

    Bounds default to :data:`SIGNAL_RANGES`; an unknown signal is not checked.
    Example: prob [0.5, nan, 1.2] fails (1.2 > 1); correct [1, -1, 0] passes.
    """
    if low is None or high is None:
        if signal not in SIGNAL_RANGES:
            return
        low, high = SIGNAL_RANGES[signal]
    row = np.asarray(row)
    if np.issubdtype(row.dtype, np.floating):
        wide = row.astype(np.float32, copy=False)  # float16 arithmetic is slow in NumPy
        if not np.fmax.reduce(wide, axis=None) > high and not np.fmin.reduce(wide, axis=None) < low:
            return
        with np.errstate(invalid="ignore"):
            bad = ~(np.isnan(row) | ((row >= low) & (row <= high)))
    else:
        bad = ~((row == -1) | ((row >= low) & (row <= high)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        at = f"sample {i}" if row.ndim == 1 else f"index {tuple(int(j) for j in np.unravel_index(i, row.shape))}"
        missing = "NaN" if np.issubdtype(row.dtype, np.floating) else "-1"
        raise ValueError(f"{where} holds {signal}={row.ravel()[i].item()!r} at {at} ({int(bad.sum())} such "
                         f"values); expected values in [{low}, {high}] or {missing} (not observed)")
