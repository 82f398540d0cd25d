"""Area under the margin (Pleiss et al., "Identifying Mislabeled Data using the Area Under
the Margin Ranking", NeurIPS 2020); the monotonic AUM baseline of CCS (Zheng et al. 2023).

AUM_i = mean over epochs of the margin (logit of the labelled class minus the largest other
logit; the ``margin`` signal, computed on logits as Pleiss et al. define it, not on softmax
as the CCS code does), over the first ``epochs`` epochs (0 = all recorded), skipping
unobserved epochs (none observed -> NaN). Low AUM = hard or mislabeled.

score_i = -AUM_i: keeps hard (low-margin) samples first, so the highest scores are the
hardest and most likely mislabeled - the ones CCS's beta drop removes
(``select_stratified(beta=..., difficulty=difficulty("aum", dyn))``, the CLI's default
``--beta-by aum``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import observed_mean, signal
from ._registry import register


def area_under_margin(margin: np.ndarray, epochs: int = 0) -> np.ndarray:
    """(N,) AUM: mean of the observed margins of a (K, N) array over its first ``epochs`` rows."""
    return observed_mean(margin, epochs, method="aum")


@register("aum", summary="area under the margin: -mean(labelled logit - largest other logit) "
                         "over epochs (Pleiss et al. 2020); keeps hard samples",
          needs=("margin",))
def aum_scores(dynamics: Any, *, epochs: int = 0) -> np.ndarray:
    """-AUM: minus the mean margin over the first ``epochs`` epochs.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``margin``.
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = lower AUM = harder = more worth keeping; NaN where no epoch was observed.
    """
    return -area_under_margin(signal(dynamics, "margin"), epochs)
