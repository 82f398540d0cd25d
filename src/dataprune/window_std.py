"""The std of one window of epochs, folded into the running sums of a ``keep_history="window"``
store (:class:`~dataprune.store.RingStoreWriter`); the store's own maths, below the methods."""
from __future__ import annotations

import numpy as np


def window_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Std (ddof=1) over the rows of one (J, c) window, NaN = unobserved.

    Returns ``(std, usable)``: (c,) float64 std (0 where unusable) and (c,) bool, True where
    the window has at least two observations. Used by the ``keep_history="window"`` store writer.
    """
    x = np.asarray(rows, np.float64)
    observed = ~np.isnan(x)
    n = observed.sum(0).astype(np.float64)
    first = np.where(observed.any(0), x[observed.argmax(0), np.arange(x.shape[1])], 0.0)
    d = np.where(observed, x - first, 0.0)
    s1 = d.sum(0)
    s2 = (d * d).sum(0)
    usable = n >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (n * s2 - s1 * s1) / (n * (n - 1))
    return np.sqrt(np.clip(np.where(usable, var, 0.0), 0.0, None)), usable
