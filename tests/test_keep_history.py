"""keep_history="window" (formerly "none"): O(N*J) store whose Dyn-Unc equals the full store's."""
import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.methods import dyn_unc


def record(path, keep, n=300, epochs=14, window=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    rec = dp.Recorder(n, path, 3, epochs=epochs, keep_history=keep, window=window,
                      signals=["prob"] if keep == "full" else dp.record.DEFAULT_SIGNALS)
    for epoch in range(epochs):
        seen = torch.randperm(n, generator=g)[: n - 20]  # 20 unobserved samples per epoch
        if epoch % 5 == 0:
            seen = seen[seen != 7]                        # sample 7 is sometimes unseen
        seen = seen[seen != 3]                            # sample 3 is never seen
        logits = torch.randn(len(seen), 3, generator=g) * (epoch + 1) / 4
        for b in range(0, len(seen), 64):
            rec.update(seen[b:b + 64], logits[b:b + 64], seen[b:b + 64] % 3)
        rec.end_epoch()
    return dp.Dynamics.open(path)


@pytest.mark.parametrize("window", [2, 4, 10])
def test_same_scores_as_full_store(tmp_path, window):
    full = record(tmp_path / "full", "full", window=window)
    none = record(tmp_path / "none", "window", window=window)
    expected = dp.score("dyn-unc", full, window=window)
    got = dp.score("dyn-unc", none, window=window)
    # same windows, same NaN rule; the two paths round differently (float32 sqrt in the
    # fused kernel), hence ~1e-7 relative, not bit-identical
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(got[3]) and not np.isnan(got[7])
    np.testing.assert_allclose(dyn_unc(none, window), got)
    assert none.labels.tolist() == full.labels.tolist()


def test_disk_is_independent_of_epochs(tmp_path):
    small = record(tmp_path / "a", "window", epochs=6)
    big = record(tmp_path / "b", "window", epochs=30)
    size = lambda d: sum(f.stat().st_size for f in d.path.glob("*.npy"))  # noqa: E731
    assert size(small) == size(big)
    assert np.load(big.path / "prob_ring.npy", mmap_mode="r").shape == (5, 300)
    assert big.epochs == 30 and big.keep_history == "window" and big.window == 4


def test_clear_errors(tmp_path):
    none = record(tmp_path / "none", "window", epochs=6)
    with pytest.raises(dp.StoreError, match="keep_history='window'.*window=4"):
        dp.score("dyn-unc", none, window=5)
    with pytest.raises(dp.StoreError, match="keep_history='window'"):
        none["prob"]
    with pytest.raises(ValueError, match="signals.*keep_history='window'"):
        dp.Recorder(5, tmp_path / "x", 3, keep_history="window", signals=["prob", "margin"])
    with pytest.raises(ValueError, match="keep_history='sometimes'"):
        dp.Recorder(5, tmp_path / "y", 3, keep_history="sometimes")
    assert dp.score("random", none).shape == (300,)  # needs no history
    few = record(tmp_path / "few", "window", epochs=4)
    with pytest.raises(ValueError, match="window=4 with 4 recorded epochs"):
        dp.score("dyn-unc", few, window=4)


def test_old_name_none_still_works_with_a_deprecation_warning(tmp_path):
    """keep_history="none" is the old name of "window": accepted with a warning, and what
    meta.json stores (so stores written before and after the rename are the same bytes)."""
    with pytest.warns(DeprecationWarning, match="keep_history='none' is deprecated"):
        rec = dp.Recorder(6, tmp_path / "s", 3, keep_history="none", window=2)
    for _ in range(3):
        rec.update(torch.arange(6), torch.randn(6, 3), torch.arange(6) % 3)
        rec.end_epoch()
    import json
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["keep_history"] == "none"
    dyn = dp.Dynamics.open(tmp_path / "s")  # a stored "none" opens without a warning
    assert dyn.keep_history == "window" and not dyn.history.per_epoch
    with pytest.warns(DeprecationWarning, match="comparing keep_history with 'none'"):
        assert dyn.keep_history == "none"
    with pytest.warns(DeprecationWarning):
        assert not dyn.keep_history != "none"
    assert dp.Dynamics.open(tmp_path / "s").history is dp.history.HistoryMode.WINDOW


def test_recordings_and_deprecated_epoch(tmp_path):
    rec = dp.Recorder(4, tmp_path / "s", 3)
    rec.update(torch.arange(4), torch.randn(4, 3), torch.arange(4) % 3)
    assert rec.end_epoch() == 1 and rec.recordings == 1
    with pytest.warns(DeprecationWarning, match="Recorder.epoch is deprecated"):
        assert rec.epoch == 1
