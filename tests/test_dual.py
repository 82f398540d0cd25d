"""Reference tests for the DUAL score: a slow loop over samples and windows vs the fast path."""
import numpy as np
import pytest

import dataprune as dp
from dataprune.methods import dyn_unc
from dataprune.methods.dual import dual, mean_prob


def dual_reference(prob: np.ndarray, window: int) -> np.ndarray:
    """Obviously correct DUAL: loop over samples and windows k = 0..T-J (T-J+1 windows);
    a window needs two observations; its mean is that of its observed epochs."""
    t, n = prob.shape
    out = np.full(n, np.nan)
    for i in range(n):
        vals = []
        for k in range(t - window + 1):
            w = [float(v) for v in prob[k:k + window, i] if not np.isnan(v)]
            if len(w) >= 2:
                vals.append(np.std(w, ddof=1) * (1.0 - np.mean(w)))
        if vals:
            out[i] = np.mean(vals)
    return out


@pytest.mark.parametrize("t,window", [(2, 2), (3, 2), (5, 5), (12, 10), (30, 10), (40, 3)])
@pytest.mark.parametrize("nan_share", [0.0, 0.3])
def test_matches_reference(t, window, nan_share):
    rng = np.random.default_rng(t * 100 + window)
    prob = rng.random((t, 61))
    prob[rng.random(prob.shape) < nan_share] = np.nan
    prob[:, 3] = np.nan                 # never observed -> NaN
    prob[:, 4] = np.nan
    prob[0, 4] = 0.5                    # one observation -> no usable window -> NaN
    got = dual(prob, window)
    np.testing.assert_allclose(got, dual_reference(prob, window), rtol=1e-10, atol=1e-12, equal_nan=True)
    assert np.isnan(got[3]) and np.isnan(got[4])


def test_float16_memmap_chunked(tmp_path):
    rng = np.random.default_rng(1)
    prob = rng.random((15, 1001)).astype(np.float16)
    prob[rng.random(prob.shape) < 0.05] = np.nan
    np.save(tmp_path / "p.npy", prob)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r")
    expected = dual_reference(prob.astype(np.float64), 4)
    for chunk in (1, 7, 1000, 5000):  # float32 square root: ~1e-7 relative (see dyn_unc Notes)
        np.testing.assert_allclose(dual(mm, 4, chunk_size=chunk), expected, rtol=2e-6, equal_nan=True)


def test_hand_computed_case():
    # T=3, J=2 -> T-J+1 = 2 windows: epochs (0,1) and (1,2).
    # sample 0: p = 0.2, 0.4, 0.8
    #   window 0: std(0.2, 0.4) = 0.2/sqrt(2), mean 0.3 -> 0.2/sqrt(2) * 0.7 = 0.14/sqrt(2)
    #   window 1: std(0.4, 0.8) = 0.4/sqrt(2), mean 0.6 -> 0.4/sqrt(2) * 0.4 = 0.16/sqrt(2)
    #   DUAL = (0.14 + 0.16) / 2 / sqrt(2) = 0.15/sqrt(2) = 0.106066...
    # sample 1: constant 0.5 -> 0
    # sample 2: p = NaN, 0.3, 0.9 -> window 0 has one observation (skipped);
    #   window 1: std(0.3, 0.9) = 0.6/sqrt(2), mean 0.6 -> 0.24/sqrt(2) = 0.169705...
    prob = np.array([[0.2, 0.5, np.nan],
                     [0.4, 0.5, 0.3],
                     [0.8, 0.5, 0.9]])
    np.testing.assert_allclose(dual(prob, 2), [0.15 / np.sqrt(2), 0.0, 0.24 / np.sqrt(2)], atol=1e-12)


def test_last_window_is_used():
    # unlike Dyn-Unc's K-J windows, a change in the last epoch counts
    prob = np.full((6, 1), 0.5)
    prob[5, 0] = 0.1
    assert dyn_unc(prob, 3)[0] == 0.0 and dual(prob, 3)[0] > 0.0


def test_direction_easy_pruned_uncertain_kept():
    """A planted easy sample (p ~ 1 throughout) scores lowest; a planted uncertain one
    (p swinging between 0.2 and 0.7) highest; a hopeless one (p ~ 0.02) low as well."""
    rng = np.random.default_rng(0)
    t, n = 12, 50
    prob = np.clip(0.6 + 0.1 * rng.standard_normal((t, n)), 0, 1)   # ordinary samples
    prob[:, 0] = 0.999 - 0.001 * rng.random(t)                      # easy
    prob[:, 1] = np.where(np.arange(t) % 2 == 0, 0.7, 0.2)          # uncertain
    prob[:, 2] = 0.02 + 0.01 * rng.random(t)                        # hopeless
    s = dual(prob, 5)
    assert s[0] == s.min() and s[1] == s.max()
    assert s[2] < np.median(s)
    assert 0 not in dp.select(s, 0.1)


def test_registered_and_scores_a_store(tmp_path):
    from helpers_methods import write_store
    rng = np.random.default_rng(2)
    prob = rng.random((8, 20)).astype(np.float16)
    dyn = write_store(tmp_path / "d", {"prob": prob}, np.zeros(20, np.int64), 2)
    assert "dual" in dp.list_methods()
    np.testing.assert_allclose(dp.score("dual", dyn, window=3), dual_reference(prob.astype(np.float64), 3),
                               rtol=2e-6)
    np.testing.assert_allclose(dp.score("dual", dyn, window=3, epochs=5),
                               dual_reference(prob[:5].astype(np.float64), 3), rtol=2e-6)


@pytest.mark.parametrize("window", [0, 1, 7, 2.5, True])
def test_bad_window(window):
    with pytest.raises(ValueError, match="window"):
        dual(np.random.rand(6, 3), window)


def test_window_longer_than_epochs_used_names_both():
    with pytest.raises(ValueError, match=r"window=10 with epochs=5 used of 30 recorded"):
        dual(np.random.rand(30, 3), 10, epochs=5)


def test_mean_prob_reference():
    rng = np.random.default_rng(3)
    prob = rng.random((9, 30))
    prob[rng.random(prob.shape) < 0.3] = np.nan
    prob[:, 0] = np.nan
    expected = np.array([np.nan if np.isnan(c[:4]).all() else np.nanmean(c[:4]) for c in prob.T])
    np.testing.assert_allclose(mean_prob(prob, 4), expected, equal_nan=True)


def test_chunk_size_never_changes_a_score():
    """A one-column chunk used to be summed by NumPy in another order than a wide one (last-bit
    differences, e.g. case 26 of this seeded loop); both kernels now sum windows row by row."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        k, n = int(rng.integers(3, 13)), int(rng.integers(1, 8))
        window = int(rng.integers(2, k))
        prob = np.where(rng.random((k, n)) < 0.5, 0.0, rng.random((k, n)))
        for fn in (dyn_unc, dual):
            assert np.array_equal(fn(prob, window, chunk_size=1), fn(prob, window)), fn.__name__
