"""Area under the margin (Pleiss et al., "Identifying Mislabeled Data using the Area Under
the Margin Ranking", NeurIPS 2020); the monotonic AUM baseline of CCS (Zheng et al. 2023).

AUM_i = mean over epochs of the margin (logit of the labelled class minus the largest other
logit; the ``margin`` signal, computed on logits as Pleiss et al. define it, not on softmax
as the CCS code does), over the first ``epochs`` epochs (0 = all recorded), skipping
unobserved epochs (none observed -> NaN). Low AUM = hard or mislabeled.

score_i = -AUM_i: keeps hard (low-margin) samples first, so the highest scores are the
hardest and most likely mislabeled - the ones ``select_stratified(beta=...)`` drops.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import as_float, column_chunks, resolve_span, signal
from ._registry import register


def area_under_margin(margin: np.ndarray, epochs: int = 0) -> np.ndarray:
    """(N,) AUM: mean of the observed margins of a (K, N) array over its first ``epochs`` rows."""
    span = resolve_span(epochs, margin.shape[0], minimum=1)
    n = margin.shape[1]
    out = np.empty(n, dtype=np.float64)
    for sl in column_chunks(n, span):
        x = as_float(margin[:span, sl])
        obs = ~np.isnan(x)
        cnt = obs.sum(0)
        out[sl] = np.where(cnt > 0, np.where(obs, x, 0.0).sum(0) / np.maximum(cnt, 1), np.nan)
    return out


@register("aum", summary="area under the margin: -mean(labelled logit - largest other logit) "
                         "over epochs (Pleiss et al. 2020); keeps hard samples",
          needs=("margin",))
def aum_scores(dynamics: Any, *, epochs: int = 0) -> np.ndarray:
    """-AUM over the first ``epochs`` epochs (0 = all); uses the ``margin`` signal."""
    return -area_under_margin(signal(dynamics, "margin"), epochs)
