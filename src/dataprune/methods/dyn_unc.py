"""Dynamic Uncertainty (He et al., "Large-scale Dataset Pruning with Dynamic Uncertainty").

U_k = std (ddof=1) of the labelled-class probability over epochs k..k+J-1,
U = mean of U_k over k = 0..K-J-1 (Eq. 2-3). Higher U = more uncertain = keep.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataPruneError
from ._registry import register

#: float64 elements per (K, chunk) working array: ~32 MB.
_CHUNK_ELEMENTS = 1 << 22


def check_window(window: int, epochs: int) -> None:
    """Raise unless 2 <= window < epochs (Eq. 3 needs at least one window, ddof=1 needs 2)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise DataPruneError(f"window={window!r}; expected an integer")
    if not 2 <= window < epochs:
        raise DataPruneError(f"window={window} with {epochs} recorded epochs; expected "
                             f"2 <= window < {epochs} (K-J windows must be at least one)")


def dyn_unc(prob: np.ndarray, window: int = 10, *, chunk_size: int | None = None) -> np.ndarray:
    """Dynamic uncertainty of every sample.

    Parameters
    ----------
    prob : (K, N) array, labelled-class probability per epoch; NaN = not observed. May be a
        memory-mapped array: it is read ``chunk_size`` samples at a time, never whole.
    window : J, the sliding-window length, 2 <= J < K.
    chunk_size : samples per chunk (default: about 32 MB of float64 work per chunk).

    Returns
    -------
    (N,) float64, higher = more uncertain = more worth keeping. A window with fewer than two
    observed epochs is skipped; a sample with no usable window gets NaN.
    """
    if getattr(prob, "ndim", None) != 2:
        raise DataPruneError(f"prob has shape {getattr(prob, 'shape', None)}; expected (K, N)")
    k_epochs, n = prob.shape
    check_window(window, k_epochs)
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // k_epochs)
    if chunk_size < 1:
        raise DataPruneError(f"chunk_size={chunk_size}; expected at least 1")
    out = np.empty(n, dtype=np.float64)
    for a in range(0, n, chunk_size):
        out[a:a + chunk_size] = _dyn_unc_chunk(np.asarray(prob[:, a:a + chunk_size], np.float64), window)
    return out


def _dyn_unc_chunk(x: np.ndarray, window: int) -> np.ndarray:
    """Eq. 2-3 on a (K, c) float64 chunk via prefix sums over epochs."""
    observed = ~np.isnan(x)
    count = observed.sum(0)
    # Centre each sample on its mean: exact std for constant rows and no cancellation.
    centre = _column_sums(np.where(observed, x, 0.0)) / np.maximum(count, 1)
    d = np.where(observed, x - centre, 0.0)

    def window_sums(v: np.ndarray) -> np.ndarray:  # (K, c) -> (K-J, c), windows k..k+J-1
        c = np.cumsum(v, axis=0)
        c = np.concatenate([np.zeros((1, v.shape[1])), c])
        return c[window:-1] - c[: -1 - window]

    n = window_sums(observed.astype(np.float64))
    s1 = window_sums(d)
    s2 = window_sums(d * d)
    usable = n >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / n) / (n - 1)
    std = np.sqrt(np.clip(np.where(usable, var, 0.0), 0.0, None))
    windows = usable.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(windows > 0, _column_sums(std) / windows, np.nan)


def _column_sums(v: np.ndarray) -> np.ndarray:
    """Sum over axis 0 strictly in row order, so each column's result does not depend on the
    chunk's width or the column's place in it (``v.sum(0)`` picks pairwise or row-wise order
    from the array's shape): chunk size and sample order never change a score, not even in
    the last bit (tests/test_properties.py)."""
    total = np.zeros(v.shape[1:], dtype=v.dtype)
    for row in v:
        total += row
    return total


@register("dyn-unc", summary="dynamic uncertainty: mean over sliding windows of the std of "
                             "the labelled-class probability (keeps uncertain samples)",
          needs=("prob",))
def dyn_unc_scores(dynamics: Any, *, window: int = 10) -> np.ndarray:
    """Dyn-Unc scores of a :class:`~dataprune.Dynamics` (uses ``dynamics.prob``)."""
    return dyn_unc(dynamics["prob"] if hasattr(dynamics, "__getitem__") and not isinstance(
        dynamics, np.ndarray) else dynamics, window=window)
