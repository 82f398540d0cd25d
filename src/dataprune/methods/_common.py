"""Helpers shared by the scoring methods: parameter checks and chunked column reads."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..errors import DataPruneError

#: float64 elements per (K, chunk) working array: ~32 MB.
CHUNK_ELEMENTS = 1 << 22


def check_int(name: str, value: Any, low: int, high: int | None = None, hint: str = "") -> int:
    """``value`` as an int in [low, high]; a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataPruneError(f"{name}={value!r}; expected an integer{hint}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in {low}..{high}"
        raise DataPruneError(f"{name}={value}; expected an integer {rng}{hint}")
    return int(value)


def signal(dynamics: Any, name: str) -> np.ndarray:
    """The (K, N) array of signal ``name`` of a Dynamics (or of a mapping of arrays)."""
    arr = dynamics[name]
    if getattr(arr, "ndim", None) != 2:
        raise DataPruneError(f"signal {name!r} has shape {getattr(arr, 'shape', None)}; expected (K, N)")
    if arr.shape[0] < 1:
        raise DataPruneError(f"signal {name!r} holds no epochs; record at least one epoch first")
    return arr


def resolve_epoch(epoch: int, k_epochs: int, span: str = "") -> int:
    """``epoch`` in 0..K-1, or -1 = early default round(0.1*K) clipped to 0..K-1;
    ``span`` describes the K epochs in the message (default: recorded)."""
    if epoch == -1 and not isinstance(epoch, bool):
        return min(max(int(np.floor(0.1 * k_epochs + 0.5)), 0), k_epochs - 1)
    return check_int("epoch", epoch, 0, k_epochs - 1,
                     f" (0-based, {span or f'{k_epochs} epochs recorded'}; -1 = round(0.1*K))")


def resolve_span(epochs: int, k_epochs: int, minimum: int = 1) -> int:
    """Number of leading epochs to use: ``epochs`` (0 = all recorded), at least ``minimum``."""
    e = check_int("epochs", epochs, 0, None, " (0 = all recorded epochs)")
    e = k_epochs if e == 0 else e
    if not minimum <= e <= k_epochs:
        raise DataPruneError(f"epochs={epochs} with {k_epochs} recorded epochs; expected "
                             f"{minimum} <= epochs <= {k_epochs} (0 = all)")
    return e


def leading(arr: np.ndarray, epochs: int, minimum: int = 1) -> tuple[np.ndarray, str]:
    """The first ``epochs`` rows of a (K, N) array (0 = all; a view, nothing is read) and a
    phrase naming them for error messages ("" when all are used)."""
    k = arr.shape[0]
    span = resolve_span(epochs, k, minimum)
    return (arr, "") if span == k else (arr[:span], f"epochs={span} used of {k} recorded")


def column_chunks(n: int, rows: int) -> Iterator[slice]:
    """Slices of at most ~CHUNK_ELEMENTS/rows sample columns covering 0..n-1."""
    step = max(1, CHUNK_ELEMENTS // max(rows, 1))
    for a in range(0, n, step):
        yield slice(a, min(a + step, n))


def as_float(block: np.ndarray) -> np.ndarray:
    """A float64 copy of a (possibly memory-mapped, float16) block."""
    return np.asarray(block, dtype=np.float64)


def reduce_columns(arr: np.ndarray, rows: int, fn: Any) -> np.ndarray:
    """(N,) float64: ``fn`` applied to float64 blocks ``arr[:rows, chunk]`` of a (K, N) array."""
    n = arr.shape[1]
    out = np.empty(n, dtype=np.float64)
    for sl in column_chunks(n, rows):
        out[sl] = fn(as_float(arr[:rows, sl]))
    return out


def observed_mean(arr: np.ndarray, epochs: int = 0) -> np.ndarray:
    """(N,) mean of the observed (non-NaN) values of a (K, N) array over its first ``epochs``
    rows (0 = all); NaN where none is observed."""
    span = resolve_span(epochs, arr.shape[0], minimum=1)

    def mean(x: np.ndarray) -> np.ndarray:
        cnt, m, _ = observed_moments(x)
        return np.where(cnt > 0, m, np.nan)

    return reduce_columns(arr, span, mean)


def observed_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of a (K, c) block, NaN = unobserved: (count, mean, population variance);
    mean and variance are 0 where nothing was observed."""
    obs = ~np.isnan(x)
    cnt = obs.sum(0)
    mean = np.where(obs, x, 0.0).sum(0) / np.maximum(cnt, 1)
    var = np.where(obs, (x - mean) ** 2, 0.0).sum(0) / np.maximum(cnt, 1)
    return cnt, mean, var
