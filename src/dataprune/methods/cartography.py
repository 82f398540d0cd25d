"""Dataset cartography variability (Swayamdipta et al., "Dataset Cartography: Mapping and
Diagnosing Datasets with Training Dynamics", EMNLP 2020); the Dyn-Unc paper's Table 7
baseline ("only one variance").

score_i = population standard deviation (ddof=0, as Swayamdipta et al.'s
sigma = sqrt(sum_e (p_e - mu)^2 / E)) of the labelled-class probability over ONE span: the
first ``epochs`` epochs (0 = all recorded; the Dyn-Unc paper's comparison uses the first 5-6).
Unobserved epochs are skipped; fewer than 2 observations -> NaN. Keep high (most variable
first). Contrast with Dyn-Unc, which averages K-J windowed stds (ddof=1).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import observed_moments, reduce_columns, resolve_span, signal
from ._registry import register


def variability(prob: np.ndarray, epochs: int = 0) -> np.ndarray:
    """(N,) population std (ddof=0) of a (K, N) array over its first ``epochs`` rows."""
    span = resolve_span(epochs, prob.shape[0], minimum=2, method="cartography")

    def std(x: np.ndarray) -> np.ndarray:
        cnt, _, var = observed_moments(x)
        return np.where(cnt >= 2, np.sqrt(var), np.nan)

    return reduce_columns(prob, span, std)


@register("cartography", summary="one std (ddof=0) of the labelled-class probability over the first "
                                 "--epochs (Swayamdipta et al. 2020); keeps variable samples",
          needs=("prob",))
def cartography_scores(dynamics: Any, *, epochs: int = 0) -> np.ndarray:
    """Variability: the population std (ddof=0) of ``prob`` over the first ``epochs`` epochs.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``prob``.
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more variable = more worth keeping; NaN with fewer than 2 observations.
    """
    return variability(signal(dynamics, "prob"), epochs)
