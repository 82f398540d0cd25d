"""Class-balanced selection and CCS stratified selection against slow references."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import dataprune as dp
from dataprune.select import allocate_strata, class_quotas, num_kept


# ---------------------------------------------------------------- class quotas / balanced
def quotas_reference(labels, kept):
    """Largest remainder with exact fractions, written plainly."""
    n = len(labels)
    classes = sorted(set(labels))
    share = {c: Fraction(kept * labels.count(c), n) for c in classes}
    q = {c: int(share[c]) for c in classes}  # floor (shares are >= 0)
    left = kept - sum(q.values())
    for c in sorted(classes, key=lambda c: (-(share[c] - int(share[c])), c))[:left]:
        q[c] += 1
    return [q[c] for c in classes]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1, 6), min_size=1, max_size=60), st.floats(0, 0.999))
def test_class_quotas_reference_and_bounds(labels, r):
    assume(len(labels) - np.floor(r * len(labels) + 0.5) >= 1)  # keeping 0 is refused
    kept = num_kept(len(labels), r)
    classes, q = class_quotas(np.array(labels), kept)
    assert q.tolist() == quotas_reference(labels, kept)
    assert q.sum() == kept
    for c, qc in zip(classes, q):                      # floor or ceil of the exact share
        share = Fraction(kept * labels.count(int(c)), len(labels))
        assert int(share) <= qc <= int(share) + (share.denominator != 1)


def test_class_quotas_hand_case():
    # 10 samples: class 0 x5, 1 x3, 2 x2; keep 7: shares 3.5, 2.1, 1.4 -> floors 3,2,1 (=6),
    # one slot left -> largest fraction 0.5 (class 0): quotas 4, 2, 1
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    assert class_quotas(labels, 7)[1].tolist() == [4, 2, 1]
    # naive per-class n_c - round(r n_c) with r=0.3: 5-2, 3-1, 2-1 = 3+2+1 = 6 != 7
    assert num_kept(10, 0.3) == 7


def test_class_balanced_matches_reference():
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=101, p=[0.5, 0.3, 0.15, 0.05])
    scores = rng.integers(0, 6, 101).astype(float)  # ties
    for r in (0.0, 0.25, 0.5, 0.9):
        got = dp.select(scores, r, labels=labels, class_balanced=True)
        classes, quotas = class_quotas(labels, num_kept(101, r))
        ref = []
        rank = {int(p): k for k, p in enumerate(np.random.default_rng(0).permutation(101))}
        for c, q in zip(classes, quotas):  # ties: place in the seeded permutation
            members = sorted((i for i in range(101) if labels[i] == c), key=lambda i: (-scores[i], rank[i]))
            ref += members[:q]
        assert got.tolist() == sorted(ref)
        assert len(got) == num_kept(101, r)


def test_class_balanced_needs_labels_and_nan_policy():
    with pytest.raises(ValueError, match="needs labels"):
        dp.select(np.arange(4.0), 0.5, class_balanced=True)
    with pytest.raises(ValueError, match=r"labels have shape \(3,\)"):
        dp.select(np.arange(4.0), 0.5, labels=np.zeros(3, int), class_balanced=True)
    s = np.array([np.nan, 1.0, 2.0, np.nan, 0.5, 0.1])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # keep 4 of 6 -> 2 per class; NaN = least ("prune") or most ("keep") worth keeping
    assert dp.select(s, 1 / 3, labels=labels, class_balanced=True, nan_policy="prune").tolist() == [1, 2, 4, 5]
    assert dp.select(s, 1 / 3, labels=labels, class_balanced=True, nan_policy="keep").tolist() == [0, 2, 3, 4]


# ---------------------------------------------------------------- CCS
def allocate_reference(sizes, budget):
    """CCS's bin_allocate loop, then the documented top-up, in plain Python."""
    order = sorted(range(len(sizes)), key=lambda b: (sizes[b], b))
    out, rest = [0] * len(sizes), budget
    for i, b in enumerate(order):
        out[b] = min(sizes[b], rest // (len(sizes) - i))
        rest -= out[b]
    while rest > 0 and any(out[b] < sizes[b] for b in order):
        for b in order:
            if rest > 0 and out[b] < sizes[b]:
                out[b] += 1
                rest -= 1
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=12), st.integers(0, 400))
def test_allocate_strata_matches_ccs_loop(sizes, budget):
    got = allocate_strata(np.array(sizes), budget)
    assert got.tolist() == allocate_reference(sizes, budget)
    assert got.sum() == min(budget, sum(sizes)) and np.all(got <= sizes)


def test_allocate_hand_case():
    # sizes 2, 10, 10, budget 12: smallest first takes min(2, 12//3=4) = 2, then 10//2 = 5, 5
    assert allocate_strata(np.array([2, 10, 10]), 12).tolist() == [2, 5, 5]


def strata_reference(values, strata):
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0] * len(values)
    return [min(int((v - lo) / (hi - lo) * strata), strata - 1) for v in values]


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("strata", [1, 5, 50])
def test_stratified_structure(beta, strata):
    rng = np.random.default_rng(7)
    n, r = 500, 0.6
    scores = -np.abs(rng.standard_normal(n))        # negative scores (CCS's *1.0001 pitfall)
    hard = rng.random(n)                            # difficulty, independent of the scores
    kept = dp.select_stratified(scores, r, beta=beta, difficulty=hard, strata=strata, seed=3)
    assert len(kept) == num_kept(n, r) and np.all(np.diff(kept) > 0)
    # 1. the beta fraction with the highest difficulty is dropped
    drop = int(np.floor(beta * n + 0.5))
    hardest = np.argsort(-hard, kind="stable")[:drop]
    assert not set(hardest.tolist()) & set(kept.tolist())
    # 2.-3. each stratum of the remaining pool holds exactly its CCS budget
    pool = np.setdiff1d(np.arange(n), hardest)
    which = strata_reference(scores[pool].tolist(), strata)
    sizes = np.bincount(which, minlength=strata).tolist()
    budgets = allocate_reference(sizes, num_kept(n, r))
    in_kept = np.isin(pool, kept)
    assert np.bincount(np.array(which)[in_kept], minlength=strata).tolist() == budgets
    # 4. seeded
    assert dp.select_stratified(scores, r, beta=beta, difficulty=hard, strata=strata,
                                seed=3).tolist() == kept.tolist()


def test_stratified_differs_by_seed_and_covers_range():
    scores = np.linspace(0, 1, 1000)
    a = dp.select_stratified(scores, 0.9, strata=10, seed=0)
    b = dp.select_stratified(scores, 0.9, strata=10, seed=1)
    assert a.tolist() != b.tolist()
    # 100 kept over 10 equal strata of 100 -> 10 from each decile (top-k would take only the last)
    assert np.bincount(a // 100, minlength=10).tolist() == [10] * 10


def test_stratified_aum_drops_lowest_aum():
    # CCS with AUM drops the lowest-AUM (mislabeled) samples: difficulty = -AUM, whatever the
    # scores that rank the rest.
    aum = np.array([5.0, 4.0, -3.0, 2.0, 1.0, -2.5, 3.0, 0.5, 1.5, 2.5])
    kept = dp.select_stratified(np.arange(10.0), 0.5, beta=0.2, difficulty=-aum, strata=3, seed=0)
    assert 2 not in kept and 5 not in kept and len(kept) == 5


def test_stratified_class_balanced_gives_each_class_its_quota():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], [300, 100, 20])
    scores = rng.random(420)
    kept = dp.select_stratified(scores, 0.5, beta=0.1, difficulty=scores, strata=5, labels=labels,
                                class_balanced=True)
    _, quotas = class_quotas(labels, num_kept(420, 0.5))
    assert np.bincount(labels[kept]).tolist() == quotas.tolist() == [150, 50, 10]
    for c, n_c in zip(range(3), (300, 100, 20)):       # beta drop inside each class
        members = np.flatnonzero(labels == c)
        top = members[np.argsort(-scores[members], kind="stable")[:round(0.1 * n_c)]]
        assert not np.isin(top, kept).any()


def test_stratified_errors_and_nan():
    s = np.array([0.1, np.nan, 0.3, 0.4])
    with pytest.raises(ValueError, match="NaN"):
        dp.select_stratified(s, 0.5)
    assert dp.select_stratified(s, 0.5, nan_policy="keep", strata=1).tolist()[0] == 1
    assert 1 not in dp.select_stratified(s, 0.25, nan_policy="prune")
    with pytest.raises(ValueError, match="beta=0.5 > prune_ratio=0.25"):
        dp.select_stratified(np.arange(4.0), 0.25, beta=0.5)
    for bad in ({"strata": 0}, {"strata": 2.5}, {"beta": -0.1}, {"seed": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            dp.select_stratified(np.arange(4.0), 0.5, **bad)
    with pytest.raises(ValueError, match="infinite"):
        dp.select_stratified(np.array([0.0, np.inf]), 0.5)
    assert dp.select_stratified(np.ones(10), 0.3).tolist() == dp.select_stratified(np.ones(10), 0.3).tolist()
    assert len(dp.select_stratified(np.ones(10), 0.0)) == 10
