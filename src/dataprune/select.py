"""Scores -> keep indices."""
from __future__ import annotations

import math

import numpy as np

from .errors import DataPruneError

NAN_POLICIES = ("raise", "prune", "keep")


def num_kept(num_samples: int, prune_ratio: float) -> int:
    """N - round(r*N), rounding halves up, for 0 <= r < 1; refuses a ratio that keeps no
    sample of N >= 1 (r >= 1 - 0.5/N), which would write an empty keep file."""
    check_ratio(prune_ratio)
    kept = int(num_samples) - int(math.floor(prune_ratio * num_samples + 0.5))
    if kept < 1 and num_samples >= 1:
        raise DataPruneError(f"prune_ratio={prune_ratio!r} keeps 0 of {num_samples} samples; expected "
                             f"prune_ratio < 1 - 0.5/N = {1 - 0.5 / num_samples:.10g}")
    return kept


def kept_count(num_samples: int, prune_ratio: float | None = None, keep: int | None = None) -> int:
    """Samples to keep: :func:`num_kept` of ``prune_ratio`` (the fraction removed), or the
    absolute count ``keep`` in 1..N (the official code keeps int(N * fraction)). Exactly one
    of the two must be given."""
    if prune_ratio is not None and keep is not None:
        raise DataPruneError(f"prune_ratio={prune_ratio!r} and keep={keep!r}; expected prune_ratio or keep, "
                             "not both")
    if prune_ratio is None and keep is None:
        raise DataPruneError("no prune_ratio or keep given; expected prune_ratio (the fraction removed) "
                             "or keep (the number of samples kept)")
    if prune_ratio is not None:
        return num_kept(num_samples, prune_ratio)
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 1 <= keep <= num_samples:
        raise DataPruneError(f"keep={keep!r}; expected an integer in 1..{num_samples} (samples kept)")
    return int(keep)


def check_ratio(prune_ratio: float) -> None:
    """Raise unless ``prune_ratio`` is a number in [0, 1)."""
    try:
        r = float(prune_ratio)
    except (TypeError, ValueError):
        raise DataPruneError(f"prune_ratio={prune_ratio!r}; expected a number in [0, 1)") from None
    if not 0.0 <= r < 1.0:  # also rejects NaN
        raise DataPruneError(f"prune_ratio={prune_ratio!r}; expected a fraction removed in [0, 1)")


def check_scores(scores: np.ndarray, nan_policy: str, allowed: tuple[str, ...] = NAN_POLICIES) -> np.ndarray:
    """``scores`` as (N,) float64, refused unless it is a non-empty (N,) array of real numbers
    and ``nan_policy`` is one of ``allowed``; NaN scores are refused under ``"raise"``."""
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise DataPruneError(f"scores have shape {scores.shape}; expected (N,)")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise DataPruneError(f"scores have dtype {scores.dtype}; expected real numbers")
    if nan_policy not in allowed:
        raise DataPruneError(f"nan_policy={nan_policy!r}; expected one of {allowed}")
    if scores.size == 0:
        raise DataPruneError("scores are empty; expected one score per sample (N >= 1)")
    s = scores.astype(np.float64)
    nan = np.isnan(s)
    if nan.any() and nan_policy == "raise":
        raise DataPruneError(
            f"{int(nan.sum())} of {len(s)} scores are NaN: those samples were never observed in a "
            f"usable window. Likely causes: num_samples (here {len(s)}) larger than the training set, an "
            "index column that does not hold the sample indices 0..N-1 (e.g. the labels), or a "
            "sampler that skips samples (drop_last, a subset); if that is intended, pass "
            "nan_policy='prune' or 'keep'")
    return s


def _check_labels(labels: np.ndarray | None, n: int) -> np.ndarray:
    if labels is None:
        raise DataPruneError("class_balanced=True needs labels (N,), e.g. Dynamics.labels")
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataPruneError(f"labels have shape {labels.shape} and dtype {labels.dtype}; "
                             f"expected ({n},) integers")
    return labels.astype(np.int64)


def class_quotas(labels: np.ndarray, kept: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class kept counts summing exactly to ``kept`` (largest-remainder rounding).

    Class c with n_c of the N samples has the ideal share q_c = kept * n_c / N; it gets
    floor(q_c), and the kept - sum(floor) remaining slots go one each to the classes with the
    largest fractional parts (ties: smaller label first). So every class keeps floor or ceil
    of its exact share - the same prune ratio inside every class, up to one sample - and the
    total equals the unbalanced N - round(r*N). Returns ``(classes, quotas)``, both ascending
    by label; every distinct label value (including -1 = unknown) is a class.
    """
    labels = np.asarray(labels)
    n = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if n == 0:
        return classes, counts
    num = counts.astype(np.int64) * int(kept)         # exact integer arithmetic
    base, rem = num // n, num % n
    extra = int(kept) - int(base.sum())
    order = np.lexsort((classes, -rem))               # largest remainder, then smaller label
    quotas = base.copy()
    quotas[order[:extra]] += 1
    return classes, quotas


def check_seed(seed: int) -> int:
    """``seed`` as an int >= 0; a clear error otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataPruneError(f"seed={seed!r}; expected an integer >= 0")
    return int(seed)


def _nan_to_inf(s: np.ndarray, nan_policy: str) -> np.ndarray:
    """NaN scores -> -inf (``"prune"``) or +inf (``"keep"``); checked scores, float64."""
    nan = np.isnan(s)
    return np.where(nan, -np.inf if nan_policy == "prune" else np.inf, s) if nan.any() else s


def ranking(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) positions of (n,) ``values`` from highest to lowest. Equal values come in the
    order of ``numpy.random.default_rng(seed).permutation(n)``, not by index: on class-sorted
    data with integer scores (forgetting) index order would prune the last classes first.

    E.g. values [1, 2, 1, 1]: position 1 first, then 0, 2, 3 in a seeded random order."""
    perm = np.random.default_rng(check_seed(seed)).permutation(len(values))
    return perm[np.argsort(-np.asarray(values)[perm], kind="stable")]


def keep_order(scores: np.ndarray, *, nan_policy: str = "raise", seed: int = 0) -> np.ndarray:
    """(N,) int64 sample indices, most worth keeping first, in :func:`select`'s order.

    ``select(scores, r, nan_policy=p, seed=s)`` (no class balancing) keeps exactly the first
    N - round(r*N) entries, so position + 1 is a sample's rank (1 = kept first). Scores
    (N,), higher = keep; ``nan_policy`` as in :func:`select`; ties in :func:`ranking`'s seeded
    order. Example: scores [0.1, 0.9, 0.5, 0.7] -> [1, 3, 2, 0].
    """
    return ranking(_nan_to_inf(check_scores(scores, nan_policy), nan_policy), seed).astype(np.int64)


def select(scores: np.ndarray, prune_ratio: float | None = None, *, keep: int | None = None,
           labels: np.ndarray | None = None, class_balanced: bool = False,
           nan_policy: str = "raise", seed: int = 0) -> np.ndarray:
    """Keep the N - round(r*N) (or ``keep``) highest-scoring samples.

    Parameters
    ----------
    scores : np.ndarray
        (N,) scores, higher = more worth keeping.
    prune_ratio : float | None
        r in [0, 1), the fraction of samples removed; a ratio that keeps no sample is
        refused.
    keep : int | None
        Instead of ``prune_ratio``, the number of samples kept, 1..N.
    labels : np.ndarray | None
        (N,) integer class labels; needed for ``class_balanced``.
    class_balanced : bool
        Keep the same fraction of every class: class c keeps its highest-scoring quota_c
        samples, quotas from :func:`class_quotas` (floor or ceil of (1-r) n_c, summing
        exactly to N - round(r*N), the same total as without balancing). Default False.
    nan_policy : str
        What NaN scores mean: ``"raise"`` (default), ``"prune"`` (least worth keeping) or
        ``"keep"`` (most worth keeping).
    seed : int
        Ties are broken by a random permutation seeded by ``seed`` (default 0,
        :func:`ranking`): same scores and seed, same subset; the kept set shrinks
        monotonically as r grows.

    Returns
    -------
    np.ndarray
        (kept,) int64 sample indices, ascending.

    Raises
    ------
    DataPruneError
        Scores not (N,) real numbers, NaN scores under ``nan_policy="raise"``, both or
        neither of ``prune_ratio`` and ``keep``, or missing/misshapen ``labels``.
    """
    s = _nan_to_inf(check_scores(scores, nan_policy), nan_policy)
    kept = kept_count(len(s), prune_ratio, keep)
    order = ranking(s, seed)
    if class_balanced:
        labels = _check_labels(labels, len(s))
        classes, quotas = class_quotas(labels, kept)
        order = order[np.argsort(labels[order], kind="stable")]  # by class, best first in each
        starts = np.searchsorted(labels[order], classes)
        parts = [order[a:a + q] for a, q in zip(starts.tolist(), quotas.tolist())]
        return np.sort(np.concatenate(parts or [np.zeros(0, np.int64)])).astype(np.int64)
    return np.sort(order[:kept]).astype(np.int64)


def allocate_strata(sizes: np.ndarray, budget: int) -> np.ndarray:
    """CCS budget allocation: visit strata from smallest to largest (ties: lower stratum first),
    each taking min(its size, remaining budget // remaining strata).

    Any budget left by the integer division is then handed out one sample at a time to the
    strata with spare room, smallest first, so the total is exactly ``min(budget, sum(sizes))``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    out = np.zeros(len(sizes), dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    rest = int(budget)
    for i, b in enumerate(order):
        take = min(int(sizes[b]), rest // (len(sizes) - i))
        out[b] = take
        rest -= take
    while rest > 0 and (out < sizes).any():
        for b in order:
            if rest > 0 and out[b] < sizes[b]:
                out[b] += 1
                rest -= 1
    return out


def select_stratified(scores: np.ndarray, prune_ratio: float | None = None, *, keep: int | None = None,
                      beta: float = 0.0, difficulty: np.ndarray | None = None, strata: int = 50, seed: int = 0,
                      labels: np.ndarray | None = None, class_balanced: bool = False,
                      nan_policy: str = "raise") -> np.ndarray:
    """Coverage-centric stratified selection (CCS, Zheng et al., ICLR 2023), for any scores.

    1. Drop the ``beta`` fraction (round(beta*n), half up) of the HARDEST samples: those with
       the highest ``difficulty`` (higher = harder; NaN = unknown, never dropped), e.g.
       ``dataprune.difficulty("aum", dyn)`` (lowest AUM first, as CCS). The method's own
       scores are never used for it (the highest Dyn-Unc scores are its most uncertain, most
       valuable samples). Ties: in a random order seeded by ``seed`` (:func:`ranking`).
    2. Split the remaining scores' range [min, max] into ``strata`` equal-width strata (the
       maximum falls in the last one; all equal -> one stratum).
    3. Spread the budget N - round(r*N) over the strata with :func:`allocate_strata`.
    4. Sample uniformly without replacement inside each stratum with
       ``numpy.random.default_rng(seed)``: same seed, same subset.

    Parameters
    ----------
    scores : np.ndarray
        (N,) finite scores, higher = more worth keeping.
    prune_ratio : float | None
        r in [0, 1), the fraction of samples removed.
    keep : int | None
        Instead of ``prune_ratio``, the number of samples kept, 1..N, as in :func:`select`.
    beta : float
        The fraction of hardest samples dropped first, in [0, 1) (default 0.0); must not
        exceed ``prune_ratio``.
    difficulty : np.ndarray | None
        (N,) difficulty, higher = harder; required when ``beta > 0``.
    strata : int
        The number of equal-width score strata, >= 1 (default 50).
    seed : int
        Seeds the tie order of the beta drop and the sampling (default 0).
    labels : np.ndarray | None
        (N,) integer class labels; needed for ``class_balanced``.
    class_balanced : bool
        Run steps 1-4 inside every class with the quota of :func:`class_quotas` (CCS's own
        class-balanced branch gives every class the last class's count; here each class gets
        its own). A class's beta drop is capped so that its quota can still be met. Default
        False.
    nan_policy : str
        ``"raise"`` (default), ``"prune"`` (NaN samples are never kept) or ``"keep"`` (kept
        first, lowest indices first if they exceed the budget; the rest of the budget is
        stratified over the others).

    Returns
    -------
    np.ndarray
        (kept,) int64 indices, ascending; exactly N - round(r*N) (or ``keep``) of them.

    Raises
    ------
    DataPruneError
        A bad argument (as in :func:`select`), infinite scores, ``beta > prune_ratio``,
        ``beta > 0`` without ``difficulty``, or fewer scored samples than must be kept.
    """
    s = check_scores(scores, nan_policy)
    n = len(s)
    kept = kept_count(n, prune_ratio, keep)
    pruned = float(prune_ratio) if prune_ratio is not None else (n - kept) / n
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise DataPruneError(f"beta={beta!r}; expected a fraction in [0, 1)") from None
    if not 0.0 <= beta < 1.0:
        raise DataPruneError(f"beta={beta!r}; expected a fraction of hardest samples in [0, 1)")
    if beta > pruned:
        raise DataPruneError(f"beta={beta} > prune_ratio={pruned:.6g}: the dropped hardest samples "
                             "are part of the pruned ones; expected beta <= prune_ratio")
    hard = _check_difficulty(difficulty, n, beta)
    if isinstance(strata, bool) or not isinstance(strata, (int, np.integer)) or strata < 1:
        raise DataPruneError(f"strata={strata!r}; expected an integer >= 1")
    check_seed(seed)
    if np.isinf(s).any():
        raise DataPruneError(f"{int(np.isinf(s).sum())} scores are infinite; expected finite scores "
                             "(stratification splits the score range)")
    if class_balanced:
        labels = _check_labels(labels, n)
        classes, quotas = class_quotas(labels, kept)
        groups = [(np.flatnonzero(labels == c), int(q)) for c, q in zip(classes, quotas)]
    else:
        groups = [(np.arange(n), kept)]
    rng = np.random.default_rng(int(seed))
    parts = []
    for idx, quota in groups:
        nan = np.isnan(s[idx])
        if nan_policy == "keep" and nan.any():
            forced = idx[nan][:quota]
            parts.append(forced)
            quota -= len(forced)
        pool = idx[~nan]
        if quota > len(pool):
            raise DataPruneError(f"{quota} samples must be kept but only {len(pool)} have a score "
                                 "(NaN scores are pruned); lower prune_ratio or use nan_policy='keep'")
        known = pool[~np.isnan(hard[pool])]  # NaN difficulty: never dropped
        drop = min(int(np.floor(beta * len(idx) + 0.5)), len(pool) - quota, len(known))
        if drop > 0:
            hardest = known[ranking(hard[known], seed)[:drop]]
            pool = np.setdiff1d(pool, hardest)
        parts.append(_stratified(s, pool, quota, int(strata), rng))
    return np.sort(np.concatenate(parts or [np.zeros(0, np.int64)])).astype(np.int64)


def _check_difficulty(difficulty: np.ndarray | None, n: int, beta: float) -> np.ndarray:
    """(n,) float64 difficulty (higher = harder) for the beta drop; all NaN when beta is 0."""
    if difficulty is None:
        if beta > 0:
            raise DataPruneError(f"beta={beta} needs difficulty: an (N,) array, higher = harder, "
                                 "e.g. dataprune.difficulty('aum', dyn); beta never drops by the scores")
        return np.full(n, np.nan)
    d = np.asarray(difficulty)
    if d.shape != (n,) or not np.issubdtype(d.dtype, np.number) or np.iscomplexobj(d):
        raise DataPruneError(f"difficulty has shape {d.shape} and dtype {d.dtype}; expected ({n},) "
                             "real numbers, higher = harder")
    return d.astype(np.float64)


def _stratified(s: np.ndarray, pool: np.ndarray, budget: int, strata: int,
                rng: np.random.Generator) -> np.ndarray:
    """Steps 2-4 of :func:`select_stratified` on ``pool`` (ascending sample indices)."""
    if budget <= 0 or len(pool) == 0:
        return np.zeros(0, dtype=np.int64)
    v = s[pool]
    lo, hi = float(v.min()), float(v.max())
    if hi > lo:
        which = np.floor((v - lo) / (hi - lo) * strata).astype(np.int64)
        which = np.clip(which, 0, strata - 1)
    else:
        which = np.zeros(len(v), dtype=np.int64)
    sizes = np.bincount(which, minlength=strata)
    budgets = allocate_strata(sizes, budget)
    out = []
    for b in range(strata):
        if budgets[b]:
            members = pool[which == b]
            out.append(members[rng.permutation(len(members))[: budgets[b]]])
    return np.concatenate(out).astype(np.int64)
