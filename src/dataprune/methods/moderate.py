"""Moderate coreset (Xia et al., "Moderate Coreset: A Universal Method of Data Selection for
Real-world Data-efficient Deep Learning", ICLR 2023).

d_i = ||h_i - m_{y_i}||_2, the distance of sample i's feature vector to its class
prototype m_c = the coordinate-wise median of the features of class c (as in the authors'
code). The authors then keep the samples whose distance *rank* over the whole training set
lies in the middle band [N(1-f)/2, N(1+f)/2) for a kept fraction f. As a score:

score_i = -|rank_i - (N-1)/2| / N,

rank_i = the 0-based rank of d_i among all N distances (ties get their mean rank). Keeping
the highest scores keeps exactly that middle band for every prune ratio (up to the rounding
of the band ends), i.e. distances closest to the median distance. Samples with an unknown
label (-1 in the store) or non-finite features get NaN and are left out of the ranks.

Features: ``--features FILE.npy`` (N, D), by default ``RUN/features.npy`` (penultimate
features of the final scoring model; Xia et al. use a pretrained/trained extractor).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataPruneError
from ..run_outputs import FEATURES_FILE, load_features
from ._registry import register


def class_median_distances(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) L2 distance of each feature row to the coordinate-wise median of its class.

    Rows with a negative label or non-finite features get NaN (and do not enter the median).
    """
    labels = np.asarray(labels)
    n = features.shape[0]
    if labels.shape != (n,):
        raise DataPruneError(f"labels have shape {labels.shape}; expected ({n},)")
    out = np.full(n, np.nan)
    order = np.argsort(labels, kind="stable")
    classes, starts = np.unique(labels[order], return_index=True)
    bounds = list(starts) + [n]
    for c, a, b in zip(classes, bounds[:-1], bounds[1:]):
        if c < 0:
            continue
        idx = np.sort(order[a:b])
        x = np.asarray(features[idx], dtype=np.float64)
        ok = np.isfinite(x).all(1)
        if not ok.any():
            continue
        med = np.median(x[ok], axis=0)
        out[idx[ok]] = np.linalg.norm(x[ok] - med, axis=1)
    return out


def middle_band_scores(distance: np.ndarray) -> np.ndarray:
    """-|rank - (n-1)/2| / N over the finite distances (mean ranks for ties); NaN stays NaN."""
    out = np.full(len(distance), np.nan)
    ok = np.flatnonzero(~np.isnan(distance))
    if len(ok) == 0:
        return out
    uniq, inv, counts = np.unique(distance[ok], return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    rank = (first + (counts - 1) / 2.0)[inv]
    out[ok] = -np.abs(rank - (len(ok) - 1) / 2.0) / len(distance)
    return out


@register("moderate", summary="distance to the class-median feature; keeps the band around the median "
                              "distance (Xia et al. 2023)",
          files=(FEATURES_FILE,))
def moderate_scores(dynamics: Any, *, features: str | None = None) -> np.ndarray:
    """Moderate coreset scores: closeness of each distance-to-class-median rank to the median rank.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` (its labels; its run directory holds ``features.npy``).
    features : str | None
        An (N, D) ``.npy`` file of features (default None: ``RUN/features.npy``).

    Returns
    -------
    np.ndarray
        (N,) float64, -|rank - (N-1)/2| / N: higher = nearer the median distance = more worth
        keeping; NaN for an unknown label or non-finite features.
    """
    feats = load_features(dynamics, features)
    return middle_band_scores(class_median_distances(feats, dynamics.labels))
