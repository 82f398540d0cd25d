import numpy as np
import pytest

import dataprune as dp
from dataprune.select import num_kept


def tie_rank(n, seed=0):
    """Sample i's place in the seeded permutation that breaks ties."""
    return {int(p): k for k, p in enumerate(np.random.default_rng(seed).permutation(n))}


def select_reference(scores, r, seed=0):
    """Sort by (-score, place in the seeded permutation) with a plain Python sort; keep the
    first N - round_half_up(r*N)."""
    n = len(scores)
    kept = n - int(np.floor(r * n + 0.5))
    rank = tie_rank(n, seed)
    order = sorted(range(n), key=lambda i: (-scores[i], rank[i]))
    return sorted(order[:kept])


@pytest.mark.parametrize("r", [0.0, 0.25, 0.3, 0.5, 0.9, 0.99])
def test_matches_reference_with_ties(r):
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=101).astype(float)  # many ties
    got = dp.select(scores, r)
    assert got.tolist() == select_reference(scores.tolist(), r)
    assert dp.select(scores, r, seed=5).tolist() == select_reference(scores.tolist(), r, seed=5)
    assert got.dtype == np.int64 and np.all(np.diff(got) > 0)


def test_hand_case():
    # scores 0.1 0.9 0.5 0.9 0.2, r=0.4 -> remove round(2.0)=2 -> keep 3: the two 0.9s and 0.5
    assert dp.select(np.array([0.1, 0.9, 0.5, 0.9, 0.2]), 0.4).tolist() == [1, 2, 3]
    # tie at the cut: 0.5 0.5 0.5 with r=1/3 -> keep 2; default_rng(0).permutation(3) is
    # [2, 0, 1], so samples 2 and 0 win (seed 1: [0, 1, 2] -> 0 and 1)
    assert dp.select(np.array([0.5, 0.5, 0.5]), 1 / 3).tolist() == [0, 2]
    assert dp.select(np.array([0.5, 0.5, 0.5]), 1 / 3, seed=1).tolist() == [0, 1]


def test_counts():
    assert num_kept(10, 0.25) == 7        # round(2.5) rounds half up -> 3 removed
    assert num_kept(60000, 0.25) == 45000
    assert num_kept(7, 0.0) == 7


@pytest.mark.parametrize("r", [-0.1, 1.0, 1.5, float("nan"), "a", None])
def test_bad_ratio(r):
    with pytest.raises(ValueError, match="prune_ratio"):
        dp.select(np.arange(4.0), r)


def test_nan_scores():
    s = np.array([0.3, np.nan, 0.1, 0.2])
    with pytest.raises(ValueError, match="1 of 4 scores are NaN"):
        dp.select(s, 0.25)
    assert dp.select(s, 0.25, nan_policy="prune").tolist() == [0, 2, 3]
    assert dp.select(s, 0.25, nan_policy="keep").tolist() == [0, 1, 3]
    with pytest.raises(ValueError, match="nan_policy"):
        dp.select(s, 0.25, nan_policy="zero")


def test_bad_scores_shape():
    with pytest.raises(ValueError, match=r"expected \(N,\)"):
        dp.select(np.zeros((2, 2)), 0.5)


def test_random_is_seeded():
    class Fake:
        num_samples = 50
    a = dp.select(dp.score("random", Fake(), seed=1), 0.5)
    b = dp.select(dp.score("random", Fake(), seed=1), 0.5)
    c = dp.select(dp.score("random", Fake(), seed=2), 0.5)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist() and len(a) == 25
