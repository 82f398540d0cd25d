"""Forgetting events (Toneva et al., "An Empirical Study of Example Forgetting during Deep
Neural Network Learning", ICLR 2019).

score_i = number of forgetting events: transitions correct -> wrong between consecutive
*observed* epochs of the ``correct`` signal (unobserved epochs, -1, are skipped).
A sample never classified correctly in any observed epoch ("never learned") is the most
forgettable: it gets K (the number of recorded epochs), more than any real count
(at most floor(K/2) events fit in K epochs). A sample never observed gets NaN.
``epochs=T`` (early scoring) counts over the first T recorded epochs only (K = T above).
Keep high (most forgotten first). Counts are integers: many samples tie (e.g. at 0), and
:func:`~dataprune.select` breaks ties in a seeded random order (``seed``), not by index.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import leading, signal
from ._registry import register


def forgetting_counts(correct: np.ndarray, epochs: int = 0) -> np.ndarray:
    """Forgetting score of every sample from a (K, N) ``correct`` array (1, 0, -1 = unseen),
    over its first ``epochs`` rows (0 = all; K below = that count).

    Returns (N,) float64: the number of 1 -> 0 transitions between consecutive observed
    epochs; K for samples never correct; NaN for samples never observed. Streams one
    epoch row at a time (O(N) memory).
    """
    correct, _ = leading(correct, epochs)
    k_epochs, n = correct.shape
    prev = np.full(n, -1, dtype=np.int8)
    count = np.zeros(n, dtype=np.int64)
    learned = np.zeros(n, dtype=bool)
    seen = np.zeros(n, dtype=bool)
    for k in range(k_epochs):
        c = np.asarray(correct[k], dtype=np.int8)
        obs = c >= 0
        count += (obs & (prev == 1) & (c == 0))
        prev = np.where(obs, c, prev)
        learned |= c == 1
        seen |= obs
    out = count.astype(np.float64)
    out[seen & ~learned] = float(k_epochs)
    out[~seen] = np.nan
    return out


@register("forgetting", summary="correct->wrong transitions over epochs, never-learned = most (Toneva "
                                "et al. 2019); keeps forgettable samples",
          needs=("correct",))
def forgetting_scores(dynamics: Any, *, epochs: int = 0) -> np.ndarray:
    """Forgetting events (correct -> wrong between observed epochs) over the first ``epochs`` epochs.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``correct``.
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more forgotten = more worth keeping; a sample never learned
        scores K (the epochs used), more than any count; NaN if never observed. See the
        module doc.
    """
    return forgetting_counts(signal(dynamics, "correct"), epochs)
