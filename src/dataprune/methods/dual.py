"""DUAL (Cho et al., "Lightweight Dataset Pruning without Full Training via Example
Difficulty and Prediction Uncertainty", ICML 2025): Dyn-Unc's windowed std, weighted by
how hard the sample still is, from an early part of the training run only.

With p_k the labelled-class probability at epoch k, T = ``epochs`` (0 = all recorded; the
paper uses the first 30 of 200 epochs on CIFAR) and J = ``window`` (paper: 10):

    D_k = std_{ddof=1}(p_k .. p_{k+J-1}) * (1 - mean(p_k .. p_{k+J-1})),  k = 0 .. T-J
    DUAL = mean_k D_k

Higher = uncertain *and* not yet learned = keep; a sample always at p ~ 1 scores ~0 (it is
pruned first), one always at p ~ 0 too (std ~ 0). Window count: **T-J+1 windows** (the
window ending at epoch T-1 is used), as the authors' code computes it
(``range(T - J + 1)`` in ``exp_cifar/importance_evaluation.py``); Dyn-Unc here follows its own
paper and official code (K-J windows), so ``dual`` is not exactly ``dyn-unc`` times a factor.
The authors' code also multiplies the std by 10, a constant that changes no ranking and is
left out. Needs 2 <= J <= T. Unobserved epochs (NaN) are handled as in Dyn-Unc: a window
with fewer than two observations is skipped (its mean is that of its observed epochs), a
sample with no usable window gets NaN.

For high prune ratios the paper draws the subset with :func:`dataprune.select_beta`
(``dataprune select --beta-sampling``), which needs :func:`mean_prob` over the same T epochs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import observed_mean, signal
from ._registry import register
from .dyn_unc import windowed_std


def dual(prob: Any, window: int = 10, *, epochs: int = 0, chunk_size: int | None = None) -> np.ndarray:
    """DUAL scores of a labelled-class probability history, windows of ``window`` epochs.

    Parameters
    ----------
    prob : Any
        (K, N) labelled-class probability per epoch; NaN = not observed. May be
        memory-mapped (read in blocks of samples).
    window : int
        J, the sliding-window length, 2 <= J <= T (default 10).
    epochs : int
        T, use only the first T epochs (default 0 = all K).
    chunk_size : int | None
        Samples per work chunk (default None: about 2**18 / K).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more worth keeping; NaN where no window has two observations.
    """
    return windowed_std(prob, window, epochs=epochs, weighted=True, chunk_size=chunk_size)


def mean_prob(prob: Any, epochs: int = 0) -> np.ndarray:
    """(N,) mean labelled-class probability over the first ``epochs`` epochs (0 = all) of a
    (K, N) array, observed epochs only (NaN if none): the mu of DUAL's Beta sampling."""
    return observed_mean(prob, epochs)


@register("dual", summary="DUAL: mean over sliding windows of std(p)*(1-mean(p)), early epochs "
                          "(Cho et al. 2025); keeps uncertain, unlearned samples",
          needs=("prob",))
def dual_scores(dynamics: Any, *, window: int = 10, epochs: int = 0) -> np.ndarray:
    """DUAL scores over the first ``epochs`` epochs with windows of ``window`` epochs.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` that recorded ``prob``.
    window : int
        J, the sliding-window length, 2 <= J <= T (default 10).
    epochs : int
        T, use only the first T recorded epochs (default 0 = all K; early scoring).

    Returns
    -------
    np.ndarray
        (N,) float64, higher = more worth keeping (uncertain, not yet learned); NaN where no
        window has two observations.
    """
    return dual(signal(dynamics, "prob"), window, epochs=epochs)
