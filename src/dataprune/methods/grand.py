"""GraNd (Paul et al., "Deep Learning on a Data Diet: Finding Important Examples Early in
Training", NeurIPS 2021), **last-layer approximation**.

score_i = the ``grand`` signal at epoch ``epoch``, recorded during training from the
penultimate features h_i (``Recorder.update(..., features=h)``): the exact norm of the
cross-entropy gradient (one-hot targets, whatever loss trained the model) with respect to
the last linear layer's weight and bias,
sqrt(||(p - y) h^T||_F^2 + ||p - y||^2) = ||p - y|| * sqrt(||h||^2 + 1) = EL2N * sqrt(||h||^2 + 1).
Paul et al. use the gradient of *all* parameters (expected over initialisations, at or near
initialisation); earlier layers are not included here, and a last layer without bias would
have ||p - y|| * ||h||. Keep high (hard first). Epoch -1 (default) = round(0.1*K), 0-based;
a list of runs is averaged like EL2N. Samples unobserved at that epoch get NaN.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import signal
from ._registry import register
from .el2n import at_epoch


@register("grand", summary="GraNd, last-layer approximation: last-linear-layer gradient norm at an "
                           "early --epoch (Paul et al. 2021); keeps hard samples",
          needs=("grand",))
def grand_scores(dynamics: Any, *, epoch: int = -1, epochs: int = 0) -> np.ndarray:
    """Last-layer GraNd at one early epoch, as EL2N.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``grand``.
    epoch : int
        The epoch, 0-based, of the first ``epochs`` epochs (default -1 = round(0.1*K)).
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = larger gradient norm = harder = more worth keeping; NaN where
        the epoch did not observe the sample.
    """
    return at_epoch(signal(dynamics, "grand"), epoch, epochs)
