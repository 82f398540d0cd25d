"""Reference tests for dyn_unc: a slow loop over samples and windows vs the fast path."""
import numpy as np
import pytest

import dataprune as dp
from dataprune.methods import dyn_unc


def dyn_unc_reference(prob: np.ndarray, window: int) -> np.ndarray:
    """Obviously correct Eq. 2-3: loop over samples and windows k = 0..K-J-1."""
    k_epochs, n = prob.shape
    out = np.full(n, np.nan)
    for i in range(n):
        stds = []
        for k in range(k_epochs - window):
            vals = [float(v) for v in prob[k:k + window, i] if not np.isnan(v)]
            if len(vals) >= 2:
                stds.append(np.std(vals, ddof=1))
        if stds:
            out[i] = np.mean(stds)
    return out


@pytest.mark.parametrize("k_epochs,window", [(3, 2), (5, 2), (12, 10), (30, 10), (40, 5), (20, 19)])
@pytest.mark.parametrize("nan_share", [0.0, 0.3])
def test_matches_reference(k_epochs, window, nan_share):
    rng = np.random.default_rng(k_epochs * 100 + window)
    prob = rng.random((k_epochs, 57))
    prob[rng.random(prob.shape) < nan_share] = np.nan
    prob[:, 3] = np.nan                 # never observed -> NaN
    prob[:, 4] = np.nan
    prob[0, 4] = 0.5                    # one observation -> no usable window -> NaN
    expected = dyn_unc_reference(prob, window)
    got = dyn_unc(prob, window)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert np.isnan(got[3]) and np.isnan(got[4])


def test_chunking_and_float16_memmap(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.random((15, 1001)).astype(np.float16)
    path = tmp_path / "p.npy"
    np.save(path, prob)
    mm = np.load(path, mmap_mode="r")
    expected = dyn_unc_reference(prob.astype(np.float64), 4)
    # float16 input: the window sums are exact, but the square root is taken in float32
    # (see dyn_unc's Notes), so agreement is ~1e-7 relative, not 1e-10.
    for chunk in (1, 7, 1000, 5000):
        np.testing.assert_allclose(dyn_unc(mm, 4, chunk_size=chunk), expected, rtol=1e-6)


def test_hand_computed_case():
    # K=4, J=2 -> K-J = 2 windows: epochs (0,1) and (1,2); epoch 3 is never used.
    # sample 0: p = 0.2, 0.4, 0.8, 0.0
    #   window 0: std(0.2, 0.4, ddof=1) = |0.4-0.2|/sqrt(2) = 0.141421...
    #   window 1: std(0.4, 0.8, ddof=1) = 0.4/sqrt(2) = 0.282842...
    #   U = (0.141421 + 0.282842) / 2 = 0.3/sqrt(2) = 0.212132...
    # sample 1: constant 0.5 -> U = 0
    # sample 2: p = NaN, 0.3, 0.9, 0.1 -> window 0 has one observation (skipped),
    #   window 1: std(0.3, 0.9) = 0.6/sqrt(2) = 0.424264... -> U = 0.424264...
    prob = np.array([[0.2, 0.5, np.nan],
                     [0.4, 0.5, 0.3],
                     [0.8, 0.5, 0.9],
                     [0.0, 0.5, 0.1]])
    got = dyn_unc(prob, window=2)
    np.testing.assert_allclose(got, [0.3 / np.sqrt(2), 0.0, 0.6 / np.sqrt(2)], atol=1e-12)


def test_window_count_convention_ignores_last_epoch():
    # Only the last epoch differs: with K-J windows the window ending at epoch K-1 is not used.
    prob = np.full((6, 2), 0.5)
    prob[5, 0] = 1.0
    assert dyn_unc(prob, window=3)[0] == 0.0
    prob[4, 1] = 1.0  # epoch K-2 lies in the last used window (epochs 2..4)
    assert dyn_unc(prob, window=3)[1] > 0.0


@pytest.mark.parametrize("window", [0, 1, 5, 6, 2.5, True])
def test_bad_window(window):
    with pytest.raises(ValueError, match="window"):
        dyn_unc(np.random.rand(5, 3), window)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"expected \(K, N\)"):
        dyn_unc(np.random.rand(5), 2)


def test_registered_method_uses_store_prob(tmp_path):
    rng = np.random.default_rng(1)
    rec = dp.Recorder(20, tmp_path / "s", 4, epochs=6)
    import torch
    for _ in range(6):
        rec.update(torch.arange(20), torch.randn(20, 4, generator=torch.Generator().manual_seed(_)),
                   torch.arange(20) % 4)
        rec.end_epoch()
    dyn = dp.Dynamics.open(tmp_path / "s")
    np.testing.assert_allclose(dp.score("dyn-unc", dyn, window=3),
                               dyn_unc_reference(np.asarray(dyn.prob, np.float64), 3), rtol=1e-6)
    with pytest.raises(ValueError, match="window=6"):
        dp.score("dyn-unc", dyn, window=6)
    with pytest.raises(ValueError, match="unknown method 'nope'.*dyn-unc"):
        dp.score("nope", dyn)
    del rng


@pytest.mark.parametrize("k_epochs,window", [(12, 10), (90, 10), (30, 2), (40, 25)])
def test_float16_fast_path_matches_reference(k_epochs, window):
    """The fused float16 path (exact window sums, float32 sqrt) within 1e-6 of float64 Eq. 2-3,
    including NaN-bearing samples (NaN-aware path), constant and nearly saturated samples."""
    rng = np.random.default_rng(k_epochs + window)
    n = 300
    prob = rng.random((k_epochs, n))
    prob[:, :50] = 0.999 + 0.001 * rng.random((k_epochs, 50))      # saturated: tiny variance
    prob[:, 50:60] = 1.0                                             # constant -> exactly 0
    prob[:, 60:70] = np.linspace(0.01, 0.99, k_epochs)[:, None]      # trending
    prob[rng.random(prob.shape) < 0.05] = np.nan
    prob[:, 70] = np.nan
    prob = prob.astype(np.float16)
    expected = dyn_unc_reference(prob.astype(np.float64), window)
    for chunk in (None, 1, 33):
        got = dyn_unc(prob, window, chunk_size=chunk)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0, equal_nan=True)
    assert (dyn_unc(prob[:, 50:60], window) == 0.0).all()


def test_float16_exact_sums_far_from_first_epoch():
    # Samples that jump early and then jitter by one float16 step near 1: the windows after
    # the jump have tiny variances measured far from the centring value (the first epoch);
    # the float16 path keeps them exactly (a float32 running-sum version is off by ~1e-3).
    rng = np.random.default_rng(5)
    k, n = 90, 64
    prob = np.empty((k, n))
    prob[:3] = 0.01
    prob[3:] = np.where(rng.random((k - 3, n)) < 0.5, 1.0, 1.0 - 2.0 ** -11)
    prob = prob.astype(np.float16)
    expected = dyn_unc_reference(prob.astype(np.float64), 10)
    np.testing.assert_allclose(dyn_unc(prob, 10), expected, rtol=1e-6)


def test_blocks_and_chunks_cover_every_sample(monkeypatch):
    import sys
    mod = sys.modules["dataprune.methods.dyn_unc"]
    monkeypatch.setattr(mod, "_READ_ELEMENTS", 12 * 50)
    rng = np.random.default_rng(2)
    prob = rng.random((12, 1003)).astype(np.float16)
    expected = dyn_unc_reference(prob.astype(np.float64), 3)
    for chunk in (None, 7, 64, 2000):
        np.testing.assert_allclose(mod.dyn_unc(prob, 3, chunk_size=chunk), expected, rtol=1e-6)


def test_memmap_file_reader_matches_in_memory(tmp_path, monkeypatch):
    # memmaps are read with preadv (no mapped pages pile up); slices of them too
    import sys
    mod = sys.modules["dataprune.methods.dyn_unc"]
    monkeypatch.setattr(mod, "_READ_ELEMENTS", 9 * 40)
    rng = np.random.default_rng(9)
    prob = rng.random((9, 501)).astype(np.float16)
    prob[rng.random(prob.shape) < 0.1] = np.nan
    np.save(tmp_path / "p.npy", prob)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r")
    for view, arr in ((mm, prob), (mm[:7], prob[:7]), (mm[2:, 13:400], prob[2:, 13:400])):
        assert mod._FileRows.of(view) is not None
        np.testing.assert_array_equal(mod.dyn_unc(view, 3), mod.dyn_unc(np.array(arr), 3))
