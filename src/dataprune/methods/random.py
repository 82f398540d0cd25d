"""Random pruning: the baseline every method must beat."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import check_int
from ._registry import register


@register("random", summary="seeded uniform random scores (the baseline)")
def random_scores(dynamics: Any, *, seed: int = 0) -> np.ndarray:
    """I.i.d. uniform scores: the baseline.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` (only its N is used).
    seed : int
        ``numpy.random.default_rng(seed)`` (default 0); same seed, same subset.

    Returns
    -------
    np.ndarray
        (N,) float64 in [0, 1).
    """
    return np.random.default_rng(check_int("seed", seed, 0)).random(int(dynamics.num_samples))
