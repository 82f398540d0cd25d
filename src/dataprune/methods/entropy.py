"""Entropy (Coleman et al., "Selection via Proxy: Efficient Data Selection for Deep
Learning", ICLR 2020): predictive entropy of the final scoring model.

score_i = -sum_c p_ic log p_ic (nats), p_i = softmax of the final model's logits on the
clean view of sample i (``RUN/final_logits.npy``, written at the end of ``dataprune
score``). Keep high (most uncertain first). Samples with non-finite logits get NaN.
One definition only: the per-epoch ``entropy`` signal of the store is *not* used.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..run_outputs import LOGITS_FILE, load_final_logits
from ._common import column_chunks
from ._registry import register


def predictive_entropy(logits: np.ndarray) -> np.ndarray:
    """(N,) entropy in nats of softmax(logits) for (N, C) logits, in float64, chunked."""
    n, c = logits.shape
    out = np.empty(n, dtype=np.float64)
    for sl in column_chunks(n, c):
        z = np.asarray(logits[sl], dtype=np.float64)
        finite = np.isfinite(z).all(1)
        z = np.where(finite[:, None], z, 0.0)
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        h = -(np.exp(logp) * logp).sum(1)
        out[sl] = np.where(finite, h, np.nan)
    return out


@register("entropy", summary="predictive entropy of the final model on the clean view "
                             "(Coleman et al. 2020); keeps uncertain samples",
          files=(LOGITS_FILE,))
def entropy_scores(dynamics: Any, *, logits: str | None = None) -> np.ndarray:
    """Predictive entropy (nats) of the final model's softmax.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` (its run directory holds ``final_logits.npy``).
    logits : str | None
        An (N, C) ``.npy`` file of final logits (default None: ``RUN/final_logits.npy``).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more uncertain = more worth keeping; NaN for non-finite logits.
    """
    return predictive_entropy(load_final_logits(dynamics, logits))
