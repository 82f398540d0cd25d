"""Property tests (hypothesis) of selection and Dyn-Unc."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dataprune as dp
from dataprune.methods import dyn_unc
from dataprune.select import num_kept

FAST = settings()  # the loaded profile (tests/conftest.py): "ci" by default, or "explore"

# Scores with many ties (small integer grid) or arbitrary finite floats, N >= 1.
scores_st = st.one_of(
    hnp.arrays(np.float64, st.integers(1, 60), elements=st.integers(-3, 3).map(float)),
    hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(-1e6, 1e6, allow_nan=False)),
)
ratio_st = st.floats(0.0, 1.0, exclude_max=True)


@FAST
@given(scores_st, ratio_st)
def test_select_count_unique_ascending_and_best(scores, r):
    n = len(scores)
    if n - int(np.floor(r * n + 0.5)) == 0:  # a ratio that keeps nothing is refused
        with pytest.raises(ValueError, match="keeps 0 of"):
            dp.select(scores, r)
        return
    keep = dp.select(scores, r)
    assert len(keep) == num_kept(n, r) == n - int(np.floor(r * n + 0.5))
    assert keep.dtype == np.int64 and np.all(np.diff(keep) > 0)  # ascending, no duplicates
    assert keep.size == 0 or (keep[0] >= 0 and keep[-1] < n)
    pruned = np.setdiff1d(np.arange(n), keep)
    if keep.size and pruned.size:
        assert scores[keep].min() >= scores[pruned].max()  # the kept are the highest-scoring


@FAST
@given(scores_st, ratio_st, ratio_st)
def test_select_monotone_in_ratio(scores, r1, r2):
    small, large = sorted((r1, r2))
    assume(len(scores) - np.floor(large * len(scores) + 0.5) >= 1)
    assert set(dp.select(scores, large)) <= set(dp.select(scores, small))


@FAST
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.one_of(st.just(np.nan), st.floats(-5, 5))),
       ratio_st, st.sampled_from(["prune", "keep"]))
def test_select_nan_policy(scores, r, policy):
    assume(len(scores) - np.floor(r * len(scores) + 0.5) >= 1)
    keep = dp.select(scores, r, nan_policy=policy)
    assert len(keep) == num_kept(len(scores), r)
    nan = np.isnan(scores)
    kept_nan = nan[keep].sum()
    if policy == "prune":  # NaN samples go first
        assert kept_nan == max(0, len(keep) - int((~nan).sum()))
    else:
        assert kept_nan == min(len(keep), int(nan.sum()))


@st.composite
def prob_st(draw):
    """(K, N) probabilities with some unobserved (NaN) entries, and a valid window."""
    k = draw(st.integers(3, 12))
    n = draw(st.integers(1, 30))
    prob = draw(hnp.arrays(np.float64, (k, n), elements=st.floats(0, 1)))
    missing = draw(hnp.arrays(np.bool_, (k, n), elements=st.booleans()))
    prob = np.where(missing, np.nan, prob)
    window = draw(st.integers(2, k - 1))
    return prob, window


@FAST
@given(prob_st(), st.integers(1, 31))
def test_dyn_unc_invariant_to_chunk_size(pw, chunk):
    prob, window = pw
    np.testing.assert_array_equal(dyn_unc(prob, window, chunk_size=chunk), dyn_unc(prob, window))


@FAST
@given(prob_st(), st.randoms(use_true_random=False))
def test_dyn_unc_permutation_equivariant(pw, rnd):
    prob, window = pw
    perm = np.array(rnd.sample(range(prob.shape[1]), prob.shape[1]))
    np.testing.assert_array_equal(dyn_unc(prob[:, perm], window), dyn_unc(prob, window)[perm])


@FAST
@given(prob_st(), st.floats(-1, 1))
def test_dyn_unc_invariant_to_shift(pw, c):
    """Exact in real arithmetic. In floating point, the prefix-sum variance of a window whose
    true std is 0 leaves ~sqrt(K * eps) * |deviation| of noise after the square root (about
    1e-8 here), so the tolerance is absolute."""
    prob, window = pw
    np.testing.assert_allclose(dyn_unc(prob + c, window), dyn_unc(prob, window), rtol=1e-9, atol=1e-7)
