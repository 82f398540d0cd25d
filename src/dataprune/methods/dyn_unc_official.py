"""Dyn-Unc with the official code's semantics for unobserved samples (BAAI-DCAI/Dataset-Pruning,
``ImageNet/get_coreset.py``), for reproducing its released coresets from ``pred_prob_history/``.

The official code keeps, per sample, a ring of the last J *observed* probabilities that
starts as J zeros; an epoch in which the sample was not seen (probability 0 there) leaves its
ring unchanged, so the same window is counted again. After epochs t = J-1 .. K-2 it takes
std (ddof=1) of every ring, times 10, and averages those K-J values. Where every sample is
seen every epoch this equals :func:`~dataprune.methods.dyn_unc` times 10; they differ for samples
with unobserved epochs (ours skips NaN inside fixed windows, as Eq. 2) and in the first
windows of a sample first seen late (the official ring still holds its starting zeros).

Hand case, J = 2, K = 4, one sample seen at epochs 0, 1, 3 with p = 0.2, 0.6, -, 1.0:
rings after t = 1, 2 are [0.2, 0.6], [0.2, 0.6] (unseen: unchanged), std 0.2828 each,
score 10 * 0.2828 = 2.828; ours: windows (0.2, 0.6) and (0.6, -) -> the second has one
observation and is skipped -> 0.2828.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import check_window, column_chunks, column_sums

#: the official code multiplies every window's std by 10 (the ranking is unchanged).
OFFICIAL_SCALE = 10.0


def dyn_unc_official(prob: Any, window: int = 10) -> np.ndarray:
    """(N,) official-semantics Dyn-Unc of a (K, N) ``prob`` (NaN or exactly 0 = not seen, as
    the official code reads 0), higher = keep. Reads column blocks, never the whole array;
    float64 throughout. A sample never seen scores 0 (its ring stays all zeros), as there."""
    k_epochs, n = prob.shape
    check_window(window, k_epochs)
    windows = k_epochs - window
    out = np.empty(n, dtype=np.float64)
    for sl in column_chunks(n, windows * window + 2 * (k_epochs + window)):
        x = np.asarray(prob[:, sl], dtype=np.float64)
        out[sl] = _chunk(x, window) * (OFFICIAL_SCALE / windows)
    return out


def _chunk(x: np.ndarray, window: int) -> np.ndarray:
    """Sum over t = J-1..K-2 of the ring std for a (K, c) float64 block."""
    k_epochs, c = x.shape
    seen = ~np.isnan(x) & (x != 0)
    count = np.cumsum(seen, axis=0)                 # (K, c): observations up to and including t
    # each column's observed values in order, after `window` leading zeros (the initial ring)
    seq = np.zeros((k_epochs + window, c))
    rows, cols = np.nonzero(seen)
    seq[count[rows, cols] - 1 + window, cols] = x[rows, cols]
    # the ring after epoch t is seq[count[t] : count[t] + J] (the last J entries so far)
    start = count[window - 1:k_epochs - 1]          # (K-J, c)
    ring = seq[start[:, None, :] + np.arange(window)[None, :, None], np.arange(c)[None, None, :]]
    return column_sums(ring.std(axis=1, ddof=1))   # (K-J, J, c) -> (c,), row order fixed
