"""Data regimes of a benchmark beside the clean training set: a long-tailed version of it
(:func:`long_tail_indices`); symmetric label noise lives in :mod:`dataprune.bench.noise`.

Pure NumPy on labels, so any loader (``dataprune record``/``train`` through their data spec,
or one's own) can apply the same subset: load the training set, keep
``long_tail_indices(train_labels, factor, seed=s)``, leave the test set as it is.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataPruneError


def long_tail_counts(class_sizes: np.ndarray, factor: float) -> np.ndarray:
    """Per-class training counts of the long-tailed version: class ``c`` (0..C-1, by class
    index, as in LDAM's CIFAR-10-LT) targets ``floor(n_max * factor ** (-c / (C - 1)))``,
    at least 1, where ``n_max`` is the largest class's size, capped at the samples the class
    has. ``class_sizes``: (C,) sample counts per class. Factor 1 keeps every sample.

    Example: sizes [100, 100, 100], factor 100 -> targets 100, floor(100 / 10) = 10,
    floor(100 / 100) = 1 -> [100, 10, 1].
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    c = len(sizes)
    if c == 0:
        return sizes
    n_max = int(sizes.max())
    exps = np.arange(c) / (c - 1) if c > 1 else np.zeros(1)
    targets = np.maximum(1, np.floor(n_max * float(factor) ** -exps + 1e-9).astype(np.int64))
    return np.minimum(targets, sizes)


def long_tail_indices(labels: np.ndarray, factor: float, *, seed: int = 0,
                      num_classes: int | None = None) -> np.ndarray:
    """Sample indices of a long-tailed subset of a training set with ``labels``.

    Class ``c`` keeps ``long_tail_counts(sizes, factor)[c]`` of its samples (exponential decay
    from the largest class's size down to ``1 / factor`` of it at the last class), drawn
    uniformly without replacement with ``numpy.random.default_rng(seed)``, class by class in
    index order; same labels, factor and seed, same subset.

    Parameters
    ----------
    labels : (N,) integer labels in 0..C-1.
    factor : imbalance factor (largest / smallest class count), a finite number >= 1.
    seed : seed of the draw.
    num_classes : C (default ``labels.max() + 1``); classes without samples keep none.

    Returns
    -------
    (M,) int64 ascending indices into ``labels``, M <= N.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise DataPruneError(f"labels have dtype {labels.dtype} and shape {labels.shape}; expected (N,) integers")
    try:
        f = float(factor)
    except (TypeError, ValueError):
        raise DataPruneError(f"--imbalance {factor!r}; expected a number >= 1 (e.g. 10 or 100)") from None
    if isinstance(factor, bool) or not math.isfinite(f) or f < 1:
        raise DataPruneError(f"--imbalance {factor!r}; expected a finite factor >= 1 (e.g. 10 or 100)")
    if labels.size and labels.min() < 0:
        raise DataPruneError(f"labels span [{labels.min()}, {labels.max()}]; expected labels >= 0")
    c = int(num_classes) if num_classes is not None else (int(labels.max()) + 1 if labels.size else 0)
    if labels.size and labels.max() >= c:
        raise DataPruneError(f"labels span [{labels.min()}, {labels.max()}]; expected 0..{c - 1}")
    order = np.argsort(labels, kind="stable")              # indices grouped by class, ascending inside
    sizes = np.bincount(labels, minlength=c).astype(np.int64)
    counts = long_tail_counts(sizes, f)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    kept = [order[s:s + n][rng.choice(n, size=k, replace=False)] for s, n, k in zip(starts, sizes, counts)]
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else np.zeros(0, np.int64)
