"""DUAL's ratio-adaptive Beta sampling (Cho et al., ICML 2025): scores -> keep indices,
drawn at random with a preference for samples of a prune-ratio-dependent difficulty band.

At high prune ratios keeping only the top scores keeps only the hardest samples and accuracy
collapses; DUAL instead draws the subset with probability proportional to
BetaPDF(mu_i; a, b) * score_i, where mu_i is the sample's mean labelled-class probability
over the scoring epochs. The Beta's mode moves towards easier samples (mu near 1) as r grows.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import DataPruneError
from .select import NAN_POLICIES, check_scores, check_seed, num_kept

#: mu is clipped into [MU_EPS, 1 - MU_EPS] so the pdf stays finite at mu = 0 or 1 (float16
#: probabilities round to exactly 1.0 for easy samples).
MU_EPS = 1e-6


def beta_logpdf(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """log of the Beta(a, b) density at x in (0, 1), elementwise, float64 (no scipy):
    (a-1) log x + (b-1) log(1-x) - (lgamma(a) + lgamma(b) - lgamma(a+b))."""
    x = np.asarray(x, dtype=np.float64)
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return (a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) - log_beta


def beta_parameters(mu_top: float, prune_ratio: float, *, c: float = 4.0,
                    concentration: float = 15.0) -> tuple[float, float]:
    """(a, b) of DUAL's Beta: b = C (1 - m)(1 - r^c), a = C, with m = ``mu_top``.

    The authors' code sets a = 16 - b (``y_a = 16 - y_b`` in ``exp_cifar/data_subset.py``);
    here a = C = 15, the public fix of that constant (a and b then share the paper's scale C).
    """
    r = float(prune_ratio)
    b = concentration * (1.0 - mu_top) * (1.0 - r ** c)
    if not b > 0.0:
        raise DataPruneError(f"Beta sampling: mean probability m={mu_top!r} of the top-scoring samples "
                             f"gives b={b!r}; expected m < 1 (top scores on samples not yet learned)")
    return float(concentration), float(b)


def select_beta(scores: np.ndarray, mean_prob: np.ndarray, prune_ratio: float, *, seed: int = 0,
                c: float = 4.0, concentration: float = 15.0, nan_policy: str = "raise") -> np.ndarray:
    """Keep N - round(r*N) samples drawn by DUAL's Beta sampling.

    Parameters
    ----------
    scores : np.ndarray
        (N,) scores, >= 0, higher = more worth keeping (e.g. ``dual`` or ``dyn-unc``).
    mean_prob : np.ndarray
        (N,) mu_i, the mean labelled-class probability over the scoring epochs
        (:func:`dataprune.methods.dual.mean_prob` over the same first T epochs).
    prune_ratio : float
        r in [0, 1), the fraction removed.
    seed : int
        ``numpy.random.default_rng(seed)`` (default 0); same seed, same subset.
    c : float
        c_D, how fast the Beta moves towards easy samples as r grows (default 4.0, the
        paper's CIFAR value).
    concentration : float
        C: a = C and b = C (1 - m)(1 - r^c) (default 15.0, as the paper).
    nan_policy : str
        A NaN score or mu: ``"raise"`` (default), ``"prune"`` (drawn only when every other
        sample is taken) or ``"keep"`` (kept first, lowest index first).

    Returns
    -------
    np.ndarray
        (kept,) int64 indices, ascending, no duplicates, exactly N - round(r*N).

    Raises
    ------
    DataPruneError
        Scores not (N,) real numbers, negative or infinite scores, ``mean_prob`` not (N,) in
        [0, 1], NaN under ``nan_policy="raise"``, non-positive ``c`` or ``concentration``,
        or top-scoring samples all learned (m = 1, so b = 0).

    Notes
    -----
    m = mean of mu over the kept-count top-scoring samples (ties: lower index); the authors'
    code uses the top 10 samples only, which makes b hinge on ten values. The draw is
    without replacement with probability proportional to w_i = BetaPDF(mu_i; a, b) * score_i,
    i.e. successive draws each proportional to the remaining weights (as
    ``numpy.random.Generator.choice(replace=False, p=w/sum(w))``), done in one pass with the
    Gumbel-top-k trick: keep the kept-count largest log(w_i) + Gumbel noise. mu is clipped
    into [1e-6, 1 - 1e-6]. Samples of weight 0 (score 0) are drawn, uniformly, only if fewer
    than kept-count samples have positive weight.
    """
    s = check_scores(scores, nan_policy, NAN_POLICIES)
    n = len(s)
    kept = num_kept(n, prune_ratio)
    mu = np.asarray(mean_prob, dtype=np.float64)
    if mu.shape != (n,):
        raise DataPruneError(f"mean_prob has shape {mu.shape}; expected ({n},), one per score")
    check_seed(seed)
    for name, v in (("c", c), ("concentration", concentration)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v <= 0:
            raise DataPruneError(f"{name}={v!r}; expected a positive number")
    nan = np.isnan(s) | np.isnan(mu)
    if nan.any() and nan_policy == "raise":
        raise DataPruneError(f"{int(nan.sum())} of {n} samples have a NaN score or mean probability; "
                             "pass nan_policy='prune' or 'keep'")
    ok = ~nan
    if (s[ok] < 0).any() or np.isinf(s[ok]).any():
        raise DataPruneError(f"{int((s[ok] < 0).sum() + np.isinf(s[ok]).sum())} scores are negative or "
                             "infinite; Beta sampling weights by score, expected finite scores >= 0 "
                             "(e.g. dual, dyn-unc)")
    if ((mu[ok] < 0) | (mu[ok] > 1)).any():
        raise DataPruneError("mean_prob has values outside [0, 1]; expected mean probabilities")
    forced = np.flatnonzero(nan)[:kept] if nan_policy == "keep" else np.zeros(0, np.int64)
    budget = kept - len(forced)
    pool = np.flatnonzero(ok)
    if budget <= 0 or len(pool) == 0:
        rest = np.zeros(0, np.int64)
    else:
        top = pool[np.argsort(-s[pool], kind="stable")[:budget]]
        a, b = beta_parameters(float(mu[top].mean()), prune_ratio, c=float(c), concentration=float(concentration))
        with np.errstate(divide="ignore"):
            logw = beta_logpdf(np.clip(mu[pool], MU_EPS, 1.0 - MU_EPS), a, b) + np.log(s[pool])
        rng = np.random.default_rng(int(seed))
        key = logw + rng.gumbel(size=len(pool))
        tie = rng.random(len(pool))                  # order of the weight-0 samples
        rest = pool[np.lexsort((-tie, -key))[:budget]]
    if len(forced) + len(rest) < kept:               # prune policy: NaN samples fill up last
        nan_idx = np.flatnonzero(nan)
        rest = np.concatenate([rest, nan_idx[:kept - len(forced) - len(rest)]])
    return np.sort(np.concatenate([forced, rest])).astype(np.int64)
