"""Scores -> keep indices."""
from __future__ import annotations

import math

import numpy as np

from .errors import DataPruneError

NAN_POLICIES = ("raise", "prune", "keep")


def num_kept(num_samples: int, prune_ratio: float) -> int:
    """N - round(r*N), rounding halves up, for 0 <= r < 1."""
    check_ratio(prune_ratio)
    return int(num_samples) - int(math.floor(prune_ratio * num_samples + 0.5))


def check_ratio(prune_ratio: float) -> None:
    """Raise unless ``prune_ratio`` is a number in [0, 1)."""
    try:
        r = float(prune_ratio)
    except (TypeError, ValueError):
        raise DataPruneError(f"prune_ratio={prune_ratio!r}; expected a number in [0, 1)") from None
    if not 0.0 <= r < 1.0:  # also rejects NaN
        raise DataPruneError(f"prune_ratio={prune_ratio!r}; expected a fraction removed in [0, 1)")


def select(scores: np.ndarray, prune_ratio: float, *, nan_policy: str = "raise") -> np.ndarray:
    """Keep the N - round(r*N) highest-scoring samples.

    Parameters
    ----------
    scores : (N,) array, higher = more worth keeping.
    prune_ratio : r in [0, 1), the fraction of samples removed.
    nan_policy : what NaN scores mean: ``"raise"`` (default), ``"prune"`` (least worth
        keeping) or ``"keep"`` (most worth keeping).

    Returns
    -------
    (kept,) int64 sample indices, ascending. Ties are broken in favour of the lower index.
    """
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise DataPruneError(f"scores have shape {scores.shape}; expected (N,)")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise DataPruneError(f"scores have dtype {scores.dtype}; expected real numbers")
    if nan_policy not in NAN_POLICIES:
        raise DataPruneError(f"nan_policy={nan_policy!r}; expected one of {NAN_POLICIES}")
    if scores.size == 0:
        raise DataPruneError("scores are empty; expected one score per sample (N >= 1)")
    kept = num_kept(len(scores), prune_ratio)
    s = scores.astype(np.float64)
    nan = np.isnan(s)
    if nan.any():
        if nan_policy == "raise":
            raise DataPruneError(f"{int(nan.sum())} of {len(s)} scores are NaN (samples never observed "
                                 "in a usable window); pass nan_policy='prune' or 'keep'")
        s = np.where(nan, -np.inf if nan_policy == "prune" else np.inf, s)
    order = np.argsort(-s, kind="stable")
    return np.sort(order[:kept]).astype(np.int64)
