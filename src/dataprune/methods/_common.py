"""Helpers shared by the scoring methods: parameter checks and chunked column reads."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..errors import DataPruneError

#: float64 elements per (K, chunk) working array: ~32 MB.
CHUNK_ELEMENTS = 1 << 22


def check_int(name: str, value: Any, low: int, high: int | None = None, hint: str = "", *,
              context: str = "", need: str = "") -> int:
    """``value`` as an int in [low, high]; a clear error otherwise.

    ``context`` follows the value in the message (e.g. " with 4 recorded epochs"); ``need``
    says what is missing when no value can work (high < low), e.g. "dyn-unc needs at least 3
    recorded epochs (the store has 2)": never an impossible range such as "2 <= J < 2".
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataPruneError(f"{name}={value!r}; expected an integer{hint}")
    if high is not None and high < low:
        raise DataPruneError(f"{need or f'no value of {name} is possible here'}; got {name}={value}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in {low}..{high}"
        raise DataPruneError(f"{name}={value}{context}; expected an integer {rng}{hint}")
    return int(value)


def need_epochs(method: str, least: int, recorded: int) -> str:
    """The message for a store too short for ``method``: "tdds needs at least 3 recorded
    epochs (the store has 2)"; with none recorded it says how epochs get recorded."""
    how = ("; Recorder.end_epoch() records one, after the epoch's update() calls" if recorded == 0 else "")
    return f"{method} needs at least {least} recorded epochs (the store has {recorded}{how})"


def signal(dynamics: Any, name: str) -> np.ndarray:
    """The (K, N) array of signal ``name`` of a Dynamics (or of a mapping of arrays)."""
    arr = dynamics[name]
    if getattr(arr, "ndim", None) != 2:
        raise DataPruneError(f"signal {name!r} has shape {getattr(arr, 'shape', None)}; expected (K, N)")
    if arr.shape[0] < 1:
        raise DataPruneError(f"signal {name!r} holds no epochs; record at least one epoch first "
                             "(Recorder.end_epoch() records one, after the epoch's update() calls)")
    return arr


def resolve_epoch(epoch: int, k_epochs: int, span: str = "") -> int:
    """``epoch`` in 0..K-1, or -1 = early default round(0.1*K) clipped to 0..K-1;
    ``span`` describes the K epochs in the message (default: recorded)."""
    if epoch == -1 and not isinstance(epoch, bool):
        return min(max(int(np.floor(0.1 * k_epochs + 0.5)), 0), k_epochs - 1)
    return check_int("epoch", epoch, 0, k_epochs - 1,
                     f" (0-based, {span or f'{k_epochs} epochs recorded'}; -1 = round(0.1*K))")


def resolve_span(epochs: int, k_epochs: int, minimum: int = 1, *, method: str = "this method") -> int:
    """Number of leading epochs to use: ``epochs`` (0 = all recorded), at least ``minimum``."""
    hint = " (0 = all recorded epochs)"
    e = check_int("epochs", epochs, 0, None, hint)
    if e == 0 and k_epochs >= minimum:
        return k_epochs
    return check_int("epochs", e, minimum, k_epochs, hint, context=f" with {k_epochs} recorded epochs",
                     need=need_epochs(method, minimum, k_epochs))


def check_nan_scores(scores: np.ndarray, arr: Any, name: str) -> None:
    """Raise if a sample whose score is NaN has an infinite value in ``arr`` (K, N): its NaN
    then comes from invalid input, not from epochs never observed. Reads only the columns
    of NaN scores, so it costs nothing when every sample has a score."""
    nan = np.flatnonzero(np.isnan(scores))
    if nan.size == 0 or not np.issubdtype(np.dtype(getattr(arr, "dtype", np.float64)), np.floating):
        return
    bad = np.zeros(nan.size, dtype=bool)
    for sl in column_chunks(nan.size, arr.shape[0]):
        bad[sl] = np.isinf(np.asarray(arr[:, nan[sl]])).any(0)
    if bad.any():
        raise DataPruneError(f"{name} holds infinite values at {int(bad.sum())} samples (first: sample "
                             f"{int(nan[bad][0])}); expected finite values (NaN = not observed): the "
                             "input is invalid, these samples were observed")


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


def observed_mean(arr: np.ndarray, epochs: int = 0, *, method: str = "this method") -> np.ndarray:
    """(N,) mean of the observed (non-NaN) values of a (K, N) array over its first ``epochs``
    rows (0 = all); NaN where none is observed. ``method`` names the caller in errors."""
    span = resolve_span(epochs, arr.shape[0], minimum=1, method=method)

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


def check_window(window: int, epochs: int, *, last_window: bool = False, span: str = "") -> None:
    """Raise unless 2 <= window < epochs (Eq. 3 needs at least one window, ddof=1 needs 2);
    with ``last_window`` (T-J+1 windows, as DUAL) window == epochs is allowed too.
    ``span`` describes ``epochs`` in the message (default: recorded epochs)."""
    method, least, need = ("dual", 2, "T-J+1") if last_window else ("dyn-unc", 3, "K-J")
    check_int("window", window, 2, epochs if last_window else epochs - 1,
              f" ({need} windows must be at least one)", context=f" with {span or f'{epochs} recorded epochs'}",
              need=need_epochs(method, least, epochs))


def column_sums(v: np.ndarray) -> np.ndarray:
    """(c,) float64 sums over axis 0 of (rows, c) ``v``, strictly in row order, so each column's
    result does not depend on the chunk's width or the column's place in it (``v.sum(0)``
    picks pairwise or row-wise order from the array's shape; a 1-column chunk sums pairwise):
    chunk size and sample order never change a score, not even in the last bit
    (tests/test_properties.py, tests/test_select_semantics.py)."""
    total = np.zeros(v.shape[1:], dtype=np.float64)
    for row in v:
        total += row
    return total
