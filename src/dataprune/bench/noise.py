"""Symmetric label noise: flip a fraction of the training labels to another class, seeded."""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataPruneError


def symmetric_label_noise(labels: np.ndarray, rate: float, num_classes: int, *, seed: int = 0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``round(rate * N)`` labels, chosen uniformly without replacement, each to a class
    drawn uniformly from the ``num_classes - 1`` other classes.

    Parameters
    ----------
    labels : (N,) integer labels in 0..num_classes-1 (not modified).
    rate : fraction of samples to flip, in [0, 1]; halves round up.
    num_classes : C >= 2.
    seed : seed of ``numpy.random.default_rng``; same inputs and seed, same noise.

    Returns
    -------
    noisy : (N,) int64, the labels a user of the noisy set has.
    is_noisy : (N,) bool, True where ``noisy != labels``.

    Example: labels [0, 1, 2, 3], rate 0.5, C 4 -> two of the four labels change, each to
    one of the three classes it is not.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataPruneError(f"labels have dtype {labels.dtype} and shape {labels.shape}; expected (N,) integers")
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise DataPruneError(f"num_classes={num_classes!r}; expected an integer >= 2")
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise DataPruneError(f"label noise rate {rate!r}; expected a number in [0, 1]") from None
    if not 0.0 <= r <= 1.0:
        raise DataPruneError(f"label noise rate {rate!r}; expected a fraction in [0, 1]")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataPruneError(f"labels span [{labels.min()}, {labels.max()}]; expected 0..{num_classes - 1}")
    n = len(labels)
    m = int(math.floor(r * n + 0.5))
    rng = np.random.default_rng(seed)
    flip = rng.choice(n, size=m, replace=False)
    offset = rng.integers(1, num_classes, size=m)          # 1..C-1: never the same class
    noisy = labels.astype(np.int64)
    noisy[flip] = (noisy[flip] + offset) % num_classes
    is_noisy = np.zeros(n, dtype=bool)
    is_noisy[flip] = True
    return noisy, is_noisy


def noisy_removed_share(keep: np.ndarray, is_noisy: np.ndarray) -> float:
    """Share of noisy samples among the removed ones: |noisy & removed| / |removed|.

    ``keep`` is the (kept,) sample indices, ``is_noisy`` the (N,) bool mask. NaN when
    nothing is removed. Example: N=4, keep [0, 1], noisy [F, F, T, F] -> 1 of the 2 removed
    is noisy -> 0.5.
    """
    is_noisy = np.asarray(is_noisy, dtype=bool)
    removed = np.ones(len(is_noisy), dtype=bool)
    removed[np.asarray(keep, dtype=np.int64)] = False
    k = int(removed.sum())
    return float(is_noisy[removed].sum() / k) if k else float("nan")
