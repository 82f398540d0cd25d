"""EL2N (Paul et al., "Deep Learning on a Data Diet: Finding Important Examples
Early in Training", NeurIPS 2021).

score_i = ||softmax(f(x_i)) - onehot(y_i)||_2 at epoch ``epoch`` (the ``el2n`` signal).
Keep high (hard first). The default epoch -1 means "early": round(0.1*K),
0-based, clipped to 0..K-1 (Paul et al. use epoch 20 of 200; the Dyn-Unc paper epoch 30
of 300). Paul et al. average over 10 independent runs: pass a list of stores,
``dataprune.score("el2n", [dyn1, dyn2, ...])`` (mean of the runs' scores, see
:func:`~dataprune.methods.score_runs`).

``epochs=T`` (early scoring, as every dynamics method) uses only the first T recorded
epochs: the default epoch is then round(0.1*T), and an explicit ``epoch`` must be < T.
Samples unobserved at the chosen epoch get NaN.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import leading, resolve_epoch, signal
from ._registry import register


def at_epoch(arr: np.ndarray, epoch: int = -1, epochs: int = 0) -> np.ndarray:
    """Row ``epoch`` of the first ``epochs`` rows (0 = all; K below = that count) of a (K, N)
    signal as float64 (-1 = round(0.1*K))."""
    arr, span = leading(arr, epochs)
    k = resolve_epoch(epoch, arr.shape[0], span)
    return np.asarray(arr[k], dtype=np.float64)


@register("el2n", summary="EL2N: ||softmax - onehot|| at an early --epoch, mean over runs (Paul "
                          "et al. 2021); keeps hard samples",
          needs=("el2n",))
def el2n_scores(dynamics: Any, *, epoch: int = -1, epochs: int = 0) -> np.ndarray:
    """EL2N, ``||softmax - onehot||``, at one early epoch.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``el2n``.
    epoch : int
        The epoch, 0-based, of the first ``epochs`` epochs (default -1 = round(0.1*K), K =
        that count).
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = harder = more worth keeping; NaN where the epoch did not observe the sample.
    """
    return at_epoch(signal(dynamics, "el2n"), epoch, epochs)

