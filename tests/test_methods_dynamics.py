"""Reference tests of the dynamics-based methods: forgetting, el2n, grand, cartography, aum, tdds.

Each fast path is compared with a slow, obviously correct loop on random (K, N) arrays with
unobserved entries, plus a tiny hand-computed case.
"""
import numpy as np
import pytest

import dataprune as dp
from dataprune.methods import get
from dataprune.methods.aum import area_under_margin
from dataprune.methods.cartography import variability
from dataprune.methods.forgetting import forgetting_counts
from dataprune.methods.tdds import tdds
from helpers_methods import dynamics_methods, write_store


# ---------------------------------------------------------------- references (slow loops)
def forgetting_reference(correct):
    k, n = correct.shape
    out = []
    for i in range(n):
        seq = [int(c) for c in correct[:, i] if c >= 0]
        if not seq:
            out.append(np.nan)
        elif 1 not in seq:
            out.append(float(k))
        else:
            out.append(float(sum(1 for a, b in zip(seq, seq[1:]) if a == 1 and b == 0)))
    return np.array(out)


def cartography_reference(prob, epochs):
    out = []
    for i in range(prob.shape[1]):
        vals = [float(v) for v in prob[:epochs, i] if not np.isnan(v)]
        out.append(np.std(vals, ddof=0) if len(vals) >= 2 else np.nan)
    return np.array(out)


def aum_reference(margin, epochs):
    out = []
    for i in range(margin.shape[1]):
        vals = [float(v) for v in margin[:epochs, i] if not np.isnan(v)]
        out.append(-np.mean(vals) if vals else np.nan)
    return np.array(out)


def tdds_reference(d, epochs, window, decay):
    """The authors' loop (window k over epochs k..k+W-1, steps d[k+1..k+W-1]) per sample,
    with the documented handling of unobserved steps."""
    out = []
    for i in range(d.shape[1]):
        total, wsum_usable, wsum_all = 0.0, 0.0, 0.0
        for k in range(epochs - window + 1):
            weight = decay * (1 - decay) ** (epochs - window - k)
            wsum_all += weight
            vals = [float(v) for v in d[k + 1:k + window, i] if not np.isnan(v)]
            if len(vals) < 2:
                continue
            dev = np.array(vals) - np.mean(vals)
            total += weight * np.sqrt((window - 1) / len(vals)) * np.linalg.norm(dev)
            wsum_usable += weight
        out.append(total * wsum_all / wsum_usable if wsum_usable > 0 else np.nan)
    return np.array(out)


def random_correct(rng, k, n):
    c = (rng.random((k, n)) < 0.6).astype(np.int8)
    c[rng.random((k, n)) < 0.2] = -1
    c[:, 0] = -1            # never observed
    c[:, 1] = 0             # never learned
    c[-1, 1] = -1
    c[:, 2] = 1             # always correct
    return c


# ---------------------------------------------------------------- forgetting
@pytest.mark.parametrize("k", [1, 2, 7, 20])
def test_forgetting_matches_reference(k):
    c = random_correct(np.random.default_rng(k), k, 60)
    np.testing.assert_array_equal(forgetting_counts(c), forgetting_reference(c))


def test_forgetting_hand_case():
    # epochs (rows) x samples: s0 1 0 1 0 -> 2 events; s1 1 -1 0 1 -> unobserved skipped: 1->0 = 1;
    # s2 0 0 0 0 never learned -> K = 4; s3 unseen -> NaN; s4 0 1 1 1 -> learned, never forgotten = 0
    c = np.array([[1, 1, 0, -1, 0],
                  [0, -1, 0, -1, 1],
                  [1, 0, 0, -1, 1],
                  [0, 1, 0, -1, 1]], dtype=np.int8)
    np.testing.assert_array_equal(forgetting_counts(c), [2, 1, 4, np.nan, 0])


# ---------------------------------------------------------------- cartography and aum
@pytest.mark.parametrize("epochs", [0, 2, 5, 12])
def test_cartography_and_aum_match_reference(epochs):
    rng = np.random.default_rng(epochs)
    x = rng.random((12, 50))
    x[rng.random(x.shape) < 0.25] = np.nan
    x[:, 3] = np.nan
    x[1:, 4] = np.nan
    span = epochs or 12
    np.testing.assert_allclose(variability(x, epochs), cartography_reference(x, span),
                               rtol=1e-12, atol=1e-14, equal_nan=True)
    np.testing.assert_allclose(-area_under_margin(x, epochs), aum_reference(x, span),
                               rtol=1e-12, equal_nan=True)


def test_cartography_aum_hand_case():
    # p = 0.2, 0.6 -> population std = 0.2 (ddof=0; ddof=1 would give 0.2828)
    np.testing.assert_allclose(variability(np.array([[0.2], [0.6], [5.0]]), 2), [0.2])
    # margins 2, -1, NaN, 5 -> AUM = 2; score = -2 (low margin = hard = kept first)
    np.testing.assert_allclose(area_under_margin(np.array([[2.0], [-1.0], [np.nan], [5.0]])), [2.0])


@pytest.mark.parametrize("bad", [1, 13, -1, 2.0])
def test_cartography_bad_epochs(bad):
    with pytest.raises(ValueError, match="epochs"):
        variability(np.random.rand(12, 3), bad)


# ---------------------------------------------------------------- tdds
@pytest.mark.parametrize("k,epochs,window,decay", [(12, 0, 10, 0.9), (12, 8, 3, 0.9),
                                                   (20, 15, 5, 0.5), (6, 0, 6, 1.0)])
@pytest.mark.parametrize("nan_share", [0.0, 0.3])
def test_tdds_matches_reference(k, epochs, window, decay, nan_share):
    rng = np.random.default_rng(k + window)
    d = rng.random((k, 40))
    d[0] = np.nan
    d[rng.random(d.shape) < nan_share] = np.nan
    d[:, 5] = np.nan
    got = tdds(d, epochs=epochs, window=window, decay=decay)
    np.testing.assert_allclose(got, tdds_reference(d, epochs or k, window, decay),
                               rtol=1e-10, atol=1e-13, equal_nan=True)
    assert np.isnan(got[5])


def test_tdds_hand_case():
    # T=4, W=3: windows k=0 (steps d1, d2) and k=1 (steps d2, d3), weights 0.9*0.1 and 0.9.
    # d = (nan, 1, 3, 3): window 0: mean 2, deviations -1, 1 -> norm sqrt(2);
    # window 1: deviations 0, 0 -> 0. Score = 0.09 * sqrt(2).
    d = np.array([[np.nan], [1.0], [3.0], [3.0]])
    np.testing.assert_allclose(tdds(d, window=3), [0.09 * np.sqrt(2)], rtol=1e-12)


@pytest.mark.parametrize("window", [2, 7, 2.5])
def test_tdds_bad_window(window):
    with pytest.raises(ValueError, match="window"):
        tdds(np.random.rand(6, 3), window=window)


# ---------------------------------------------------------------- el2n / grand via the registry
def test_el2n_grand_epoch_and_runs(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 30)
    runs = []
    for r in range(3):
        e = rng.random((20, 30)).astype(np.float16)
        if r < 2:
            e[2, 7] = np.nan    # sample 7 at epoch 2 is seen only in run 2
        runs.append(write_store(tmp_path / f"r{r}", {"el2n": e, "grand": e * 2}, labels, 3))
    # default epoch = round(0.1 * 20) = 2 (0-based)
    np.testing.assert_array_equal(dp.score("el2n", runs[0]), runs[0].el2n[2].astype(float))
    np.testing.assert_array_equal(dp.score("grand", runs[0], epoch=5), runs[0].grand[5].astype(float))
    assert np.isnan(dp.score("el2n", runs[0])[7])
    # several runs: mean over runs, NaN only where every run is NaN
    mean = np.nanmean([r.el2n[2].astype(float) for r in runs], axis=0)
    np.testing.assert_allclose(dp.score("el2n", runs), mean, rtol=1e-12)
    assert dp.score("el2n", runs)[7] == float(runs[2].el2n[2, 7])
    np.testing.assert_allclose(dp.score_runs("el2n", runs, epoch=4),
                               np.mean([r.el2n[4].astype(float) for r in runs], axis=0))
    with pytest.raises(ValueError, match="epoch=20"):
        dp.score("el2n", runs[0], epoch=20)
    other = write_store(tmp_path / "o", {"el2n": np.zeros((20, 30), np.float16)}, (labels + 1) % 3, 3)
    with pytest.raises(ValueError, match="disagree on labels"):
        dp.score("el2n", [runs[0], other])


def test_missing_signal_names_it(tmp_path):
    dyn = write_store(tmp_path / "s", {"prob": np.zeros((4, 5), np.float16)}, np.zeros(5, int), 2)
    for method in dynamics_methods():
        lacking = [s for s in get(method).needs if s not in dyn.signals]
        if lacking:
            with pytest.raises(dp.MissingSignalError, match=f"'{lacking[0]}'"):
                dp.score(method, dyn)


def test_store_methods_match_array_functions(tmp_path):
    rng = np.random.default_rng(5)
    k, n = 15, 40
    c = random_correct(rng, k, n)
    prob = rng.random((k, n)).astype(np.float16)
    margin = (rng.standard_normal((k, n)) * 3).astype(np.float16)
    d = rng.random((k, n)).astype(np.float16)
    d[0] = np.nan
    dyn = write_store(tmp_path / "s", {"correct": c, "prob": prob, "margin": margin, "tdds_d": d},
                      rng.integers(0, 4, n), 4)
    np.testing.assert_array_equal(dp.score("forgetting", dyn), forgetting_reference(c))
    np.testing.assert_allclose(dp.score("cartography", dyn, epochs=6),
                               cartography_reference(prob.astype(float), 6), rtol=1e-12)
    np.testing.assert_allclose(dp.score("aum", dyn), aum_reference(margin.astype(float), k), rtol=1e-12)
    np.testing.assert_allclose(dp.score("tdds", dyn, window=4),
                               tdds_reference(d.astype(float), k, 4, 0.9), rtol=1e-10)
