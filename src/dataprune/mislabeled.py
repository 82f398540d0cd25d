"""Two-sided pruning: drop the samples most likely mislabeled, then the easiest.

Static pruning keeps the hardest samples, and under label noise the hardest are largely the
mislabeled ones (EL2N keeps them all). The first T epochs already show them: before the
model memorises, it puts less than chance on a wrong label. The evidence for sample i is
its mean probability of the labelled class over the recordings after the first (all of
them when there is one); the noise-rate estimate is the share of samples whose evidence is
below 1/C. When that estimate reaches ``GATE`` the run drops that many lowest-evidence
samples first (the suspects), then the lowest-scoring of the rest; below it, pruning is
one-sided as before, so clean data keeps its subset. Measured against the matched-compute
baseline in benchmarks/results/recipe_search.md.
"""
from __future__ import annotations

import numpy as np

from .errors import DataPruneError
from .select import check_ratio, num_kept, select

#: the noise-rate estimate from which suspects are dropped (below it: one-sided pruning)
GATE = 0.1
#: values of ``PrunePlan.mislabeled`` / ``train --drop-mislabeled``
MODES = ("auto", "off")
#: recordings the gate needs: the first one (an untrained model) says nothing about labels
MIN_RECORDINGS = 2


def label_evidence(prob: np.ndarray) -> np.ndarray:
    """(N,) mean labelled-class probability over recordings 1..K-1 of ``prob`` (K, N) (all K
    when K = 1), NaN-skipping (NaN where a sample was never seen); low = likely mislabeled."""
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 2 or prob.shape[0] < 1:
        raise DataPruneError(f"prob has shape {prob.shape}; expected (K, N) with K >= 1 recordings")
    part = prob[1:] if len(prob) > 1 else prob
    seen = np.isfinite(part)
    total = np.where(seen, part, 0.0).sum(0)
    count = seen.sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def estimate_noise_rate(evidence: np.ndarray, num_classes: int) -> float:
    """Share of samples whose ``evidence`` (N,) is below chance, 1/C (NaN counts as not)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise DataPruneError(f"num_classes={num_classes!r}; expected an integer >= 2")
    evidence = np.asarray(evidence, dtype=np.float64)
    return float(np.mean(evidence < 1.0 / num_classes)) if evidence.size else 0.0


def suspect_share(noise_rate: float, mode: str = "auto", recordings: int = MIN_RECORDINGS) -> float:
    """The share of samples to drop as likely mislabeled: ``noise_rate`` when ``mode`` is
    "auto", the estimate reaches :data:`GATE` and it rests on at least
    :data:`MIN_RECORDINGS` ``recordings``; else 0."""
    if mode not in MODES:
        raise DataPruneError(f"mislabeled={mode!r}; expected one of {', '.join(MODES)}")
    enough = recordings >= MIN_RECORDINGS
    return float(noise_rate) if mode == "auto" and enough and noise_rate >= GATE else 0.0


def select_two_sided(scores: np.ndarray, evidence: np.ndarray, prune_ratio: float, suspect_ratio: float, *,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, suspects)``: int64 sample indices, ascending.

    Removes round(r' N) samples in all, r' = max(``prune_ratio``, ``suspect_ratio``): first the
    round(``suspect_ratio`` N) with the lowest ``evidence`` (N,) (likely mislabeled; ties by
    index; NaN evidence is never a suspect), then, of the rest, the lowest ``scores`` (N,)
    (higher = more worth keeping, NaN pruned first; ties as :func:`~dataprune.select.select`
    breaks them with ``seed``). ``suspect_ratio`` 0 is :func:`~dataprune.select.select`.
    """
    scores, evidence = np.asarray(scores, dtype=np.float64), np.asarray(evidence, dtype=np.float64)
    n = len(scores)
    if evidence.shape != (n,):
        raise DataPruneError(f"evidence has shape {evidence.shape}; expected ({n},) like the scores")
    check_ratio(prune_ratio)
    check_ratio(suspect_ratio)
    kept = num_kept(n, max(prune_ratio, suspect_ratio))
    n_suspects = min(n - kept, n - num_kept(n, suspect_ratio))
    suspects = np.sort(np.argsort(np.where(np.isnan(evidence), np.inf, evidence), kind="stable")[:n_suspects])
    rest = np.setdiff1d(np.arange(n), suspects)
    keep = rest[select(scores[rest], keep=kept, nan_policy="prune", seed=seed)]
    return np.sort(keep).astype(np.int64), suspects.astype(np.int64)
