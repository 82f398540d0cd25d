"""Temporal dual-depth scoring, TDDS (Zhang et al., "Spanning Training Progress: Temporal
Dual-Depth Scoring (TDDS) for Enhanced Dataset Pruning", CVPR 2024).

From the ``tdds_d`` signal: row t holds d_t = sum_c |p_t,c (log p_t,c - log p_t-1,c)|, the
change of the softmax p between epochs t-1 and t, recorded by the Recorder (row 0 is NaN).
With T = ``epochs`` (0 = all recorded) and W = ``window``, for each window k = 0..T-W over
epochs k..k+W-1 (its W-1 steps d_{k+1}..d_{k+W-1}):

    s_k = || d - mean(d) ||_2        (L2 norm of the deviations inside the window)
    score = sum_k  decay * (1 - decay)^(T-W-k) * s_k

so late windows dominate (decay 0.9). Keep high. This is the authors' computation (their
``trajectory_len`` = T, ``window_size`` = W, with log(p + 1e-8) instead of exact
log-softmax). Unobserved steps (NaN): a window with fewer than 2 observed steps is skipped,
a window with n < W-1 observed steps uses sqrt((W-1)/n) * ||deviations||, and the weighted
sum is rescaled by (total weight / weight of the usable windows), so fully observed
samples get exactly the formula above; no usable window -> NaN.
The authors record the training forward (view ``train``); the CIFAR-100 setting reported
is T=90, W=10.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataPruneError
from ._common import as_float, check_int, column_chunks, resolve_span, signal
from ._registry import register


def tdds(d: np.ndarray, *, epochs: int = 0, window: int = 10, decay: float = 0.9) -> np.ndarray:
    """TDDS scores from a (K, N) array of per-epoch steps d (row t: epoch t-1 -> t)."""
    if getattr(d, "ndim", None) != 2:
        raise DataPruneError(f"tdds_d has shape {getattr(d, 'shape', None)}; expected (K, N)")
    span = resolve_span(epochs, d.shape[0], minimum=3, method="tdds")
    w = check_int("window", window, 3, span, context=f" with {span} epochs used")
    try:
        decay = float(decay)
    except (TypeError, ValueError):
        raise DataPruneError(f"decay={decay!r}; expected a number in (0, 1]") from None
    if not 0.0 < decay <= 1.0:
        raise DataPruneError(f"decay={decay!r}; expected a number in (0, 1]")
    n_windows = span - w + 1
    weights = decay * (1.0 - decay) ** (span - w - np.arange(n_windows, dtype=np.float64))
    n = d.shape[1]
    out = np.empty(n, dtype=np.float64)
    for sl in column_chunks(n, span):
        out[sl] = _tdds_chunk(as_float(d[:span, sl]), w, weights)
    return out


def _tdds_chunk(x: np.ndarray, w: int, weights: np.ndarray) -> np.ndarray:
    """Window sums via prefix sums over the rows 1..T-1 of a (T, c) float64 chunk."""
    x = x[1:]  # row 0 has no previous epoch; window k uses steps k..k+W-2 of x[1:]
    obs = ~np.isnan(x)
    cnt_all = obs.sum(0)
    centre = np.where(obs, x, 0.0).sum(0) / np.maximum(cnt_all, 1)
    dev = np.where(obs, x - centre, 0.0)

    def window_sums(v: np.ndarray) -> np.ndarray:  # (T-1, c) -> (T-W+1, c), W-1 steps each
        c = np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(v, axis=0)])
        return c[w - 1:] - c[: len(c) - (w - 1)]

    cnt = window_sums(obs.astype(np.float64))
    s1 = window_sums(dev)
    s2 = window_sums(dev * dev)
    usable = cnt >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = np.clip(s2 - s1 * s1 / cnt, 0.0, None)            # sum of squared deviations
        s = np.sqrt(ss * (w - 1) / cnt)                        # = ||dev|| when fully observed
    s = np.where(usable, s, 0.0)
    wu = (weights[:, None] * usable).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wu > 0, (weights[:, None] * s).sum(0) * (weights.sum() / wu), np.nan)


@register("tdds", summary="temporal dual-depth scoring: decayed windowed spread of epoch-to-epoch "
                          "softmax change (Zhang et al. 2024); keeps high",
          needs=("tdds_d",))
def tdds_scores(dynamics: Any, *, epochs: int = 0, window: int = 10, decay: float = 0.9) -> np.ndarray:
    """TDDS over the first ``epochs`` epochs with windows of ``window`` epochs.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``tdds_d``.
    epochs : int
        T, use only the first T recorded epochs, at least 3 (default 0 = all K).
    window : int
        W, the window length in epochs, 3 <= W <= T (default 10).
    decay : float
        The weight decay of earlier windows, in (0, 1] (default 0.9).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more worth keeping; NaN where no window was usable.
    """
    return tdds(signal(dynamics, "tdds_d"), epochs=epochs, window=window, decay=decay)
