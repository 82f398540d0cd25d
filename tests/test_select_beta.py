"""DUAL's Beta sampling: the Beta density against a slow formula, exact counts, seeding, no
duplicates, inclusion probabilities of weighted sampling without replacement, and the band
it favours."""
import itertools
import math

import numpy as np
import pytest

import dataprune as dp
from dataprune.select_beta import MU_EPS, beta_logpdf, beta_parameters


def beta_pdf_slow(x: float, a: float, b: float) -> float:
    return x ** (a - 1) * (1 - x) ** (b - 1) * math.gamma(a + b) / (math.gamma(a) * math.gamma(b))


@pytest.mark.parametrize("a,b", [(15.0, 2.57925), (1.0, 1.0), (2.0, 5.0), (15.0, 0.3), (0.5, 0.5)])
def test_beta_pdf_matches_slow_formula(a, b):
    xs = np.array([1e-3, 0.1, 0.25, 0.5, 0.77, 0.9, 0.999])
    got = np.exp(beta_logpdf(xs, a, b))
    np.testing.assert_allclose(got, [beta_pdf_slow(float(x), a, b) for x in xs], rtol=1e-10)


def test_beta_parameters_hand_computed():
    # m = 0.5, r = 0.9, c = 4: b = 15 * 0.5 * (1 - 0.9**4) = 7.5 * 0.3439 = 2.57925; a = 15
    a, b = beta_parameters(0.5, 0.9)
    assert a == 15.0 and b == pytest.approx(2.57925, rel=1e-12)
    # r = 0: b = 15 (1 - m); mode (a-1)/(a+b-2) moves towards 1 as r grows
    assert beta_parameters(0.5, 0.0)[1] == pytest.approx(7.5)
    with pytest.raises(ValueError, match="m=1.0"):
        beta_parameters(1.0, 0.5)


def _data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(n) + 0.01, rng.random(n)


@pytest.mark.parametrize("r", [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95])
def test_exact_count_no_duplicates_ascending(r):
    s, mu = _data()
    keep = dp.select_beta(s, mu, r, seed=3)
    assert len(keep) == len(s) - math.floor(r * len(s) + 0.5)
    assert len(np.unique(keep)) == len(keep) and np.all(np.diff(keep) > 0) and keep.dtype == np.int64


def test_seeded_reproducible():
    s, mu = _data()
    a = dp.select_beta(s, mu, 0.8, seed=7)
    assert np.array_equal(a, dp.select_beta(s, mu, 0.8, seed=7))
    assert not np.array_equal(a, dp.select_beta(s, mu, 0.8, seed=8))


def test_favours_the_beta_band():
    """Equal scores, mu uniform: at r = 0.9, m ~ 0.5 -> Beta(15, 2.58), mode ~ 0.9. The kept
    samples concentrate there (uniform selection would put 23 % of them in [0.75, 0.98])."""
    rng = np.random.default_rng(0)
    mu = rng.random(5000)
    keep = dp.select_beta(np.ones(5000), mu, 0.9, seed=0)
    band = ((mu[keep] >= 0.75) & (mu[keep] <= 0.98)).mean()
    assert band > 0.7, band
    assert 0.8 < np.median(mu[keep]) < 0.92
    # at a low ratio the Beta is wider and centred lower: fewer kept samples in the band
    low = dp.select_beta(np.ones(5000), mu, 0.3, seed=0)
    assert ((mu[low] >= 0.75) & (mu[low] <= 0.98)).mean() < band


def test_score_factor_counts():
    """Same mu everywhere: inclusion follows the score alone; score 0 is never drawn while
    enough positive-weight samples exist, and is drawn (uniformly) only to fill the count."""
    mu = np.full(1000, 0.6)
    s = np.where(np.arange(1000) < 500, 1.0, 0.0)
    keep = dp.select_beta(s, mu, 0.6, seed=1)                 # keep 400 of the 500 positive
    assert keep.max() < 500
    keep = dp.select_beta(s, mu, 0.3, seed=1)                 # keep 700: all 500 + 200 zeros
    assert np.isin(np.arange(500), keep).all() and len(keep) == 700


def test_inclusion_probabilities_match_successive_sampling():
    """N=5, keep 2: inclusion frequency over seeds vs the exact probabilities of drawing
    twice, each draw proportional to the remaining weights (numpy's choice(replace=False))."""
    s = np.array([1.0, 2.0, 3.0, 0.5, 1.5])
    mu = np.array([0.2, 0.5, 0.95, 0.7, 0.85])
    r = 0.6                                                    # keep 2 of 5
    top = np.argsort(-s, kind="stable")[:2]
    a, b = beta_parameters(mu[top].mean(), r)
    w = np.exp(beta_logpdf(np.clip(mu, MU_EPS, 1 - MU_EPS), a, b)) * s
    exact = np.zeros(5)
    for i, j in itertools.permutations(range(5), 2):
        p = w[i] / w.sum() * w[j] / (w.sum() - w[i])
        exact[i] += p
        exact[j] += p
    runs = 6000
    freq = np.zeros(5)
    for seed in range(runs):
        freq[dp.select_beta(s, mu, r, seed=seed)] += 1
    freq /= runs
    # binomial std <= sqrt(0.25/6000) = 0.0065: 4 sigma
    np.testing.assert_allclose(freq, exact, atol=0.026)


def test_nan_policies():
    s, mu = _data(100)
    s[:5] = np.nan
    mu[5:8] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dp.select_beta(s, mu, 0.5)
    pruned = dp.select_beta(s, mu, 0.5, nan_policy="prune")
    assert not np.isin(np.arange(8), pruned).any() and len(pruned) == 50
    kept = dp.select_beta(s, mu, 0.5, nan_policy="keep")
    assert np.isin(np.arange(8), kept).all() and len(kept) == 50


@pytest.mark.parametrize("kw,match", [({"seed": -1}, "seed"), ({"c": 0}, "c=0"),
                                      ({"concentration": float("nan")}, "concentration")])
def test_bad_parameters(kw, match):
    s, mu = _data(20)
    with pytest.raises(ValueError, match=match):
        dp.select_beta(s, mu, 0.5, **kw)


def test_bad_inputs():
    s, mu = _data(20)
    with pytest.raises(ValueError, match="negative"):
        dp.select_beta(s - 2, mu, 0.5)
    with pytest.raises(ValueError, match="shape"):
        dp.select_beta(s, mu[:5], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dp.select_beta(s, mu + 1, 0.5)
    with pytest.raises(ValueError, match="prune_ratio"):
        dp.select_beta(s, mu, 1.0)
