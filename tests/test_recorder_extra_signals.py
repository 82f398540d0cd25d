"""The Recorder's grand and tdds_d signals against NumPy references."""
import numpy as np
import pytest
import torch

import dataprune as dp


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def test_grand_is_last_layer_gradient_norm(tmp_path):
    # Reference: autograd of cross-entropy w.r.t. a real nn.Linear's weight and bias.
    torch.manual_seed(0)
    n, d, c = 12, 5, 4
    h = torch.randn(n, d)
    lin = torch.nn.Linear(d, c)
    y = torch.randint(0, c, (n,))
    ref = []
    for i in range(n):
        lin.zero_grad()
        torch.nn.functional.cross_entropy(lin(h[i:i + 1]), y[i:i + 1]).backward()
        ref.append(torch.cat([lin.weight.grad.flatten(), lin.bias.grad]).norm().item())
    rec = dp.Recorder(n, tmp_path / "s", c, signals=["grand", "el2n"], epochs=1)
    with torch.no_grad():
        rec.update(torch.arange(n), lin(h), y, features=h)
    rec.end_epoch()
    dyn = dp.Dynamics.open(tmp_path / "s")
    np.testing.assert_allclose(dyn.grand[0].astype(float), ref, rtol=2e-3)  # float16 store
    with pytest.raises(ValueError, match="features=h"):
        rec.update(torch.arange(n), lin(h).detach(), y)
    with pytest.raises(ValueError, match=r"features have shape \(3, 5\)"):
        rec.update(torch.arange(n), lin(h).detach(), y, features=h[:3])


def test_tdds_d_matches_numpy_reference(tmp_path):
    rng = np.random.default_rng(0)
    n, c, k = 7, 3, 4
    logits = rng.standard_normal((k, n, c)) * 2
    seen = np.ones((k, n), dtype=bool)
    seen[1, 2] = False        # sample 2 unseen at epoch 1 -> d NaN at epochs 1 and 2
    seen[:, 6] = False        # sample 6 never seen
    y = rng.integers(0, c, n)
    rec = dp.Recorder(n, tmp_path / "s", c, signals=["prob", "tdds_d"], epochs=k)
    for e in range(k):
        idx = np.flatnonzero(seen[e])[::-1].copy()   # out of order, two batches
        for part in (idx[:3], idx[3:]):
            rec.update(torch.tensor(part), torch.tensor(logits[e, part], dtype=torch.float32),
                       torch.tensor(y[part]))
        rec.end_epoch()
    dyn = dp.Dynamics.open(tmp_path / "s")
    ref = np.full((k, n), np.nan)
    for e in range(1, k):
        for i in range(n):
            if seen[e, i] and seen[e - 1, i]:
                p, q = softmax(logits[e, i:i + 1])[0], softmax(logits[e - 1, i:i + 1])[0]
                ref[e, i] = np.sum(np.abs(p * (np.log(p) - np.log(q))))
    np.testing.assert_allclose(dyn.tdds_d.astype(float), ref, rtol=5e-3, atol=2e-3, equal_nan=True)
    assert np.isnan(dyn.tdds_d[0]).all() and np.isnan(dyn.tdds_d[2, 2])


def test_tdds_d_first_occurrence_in_epoch_wins(tmp_path):
    rec = dp.Recorder(2, tmp_path / "s", 2, signals=["tdds_d"], epochs=2)
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    rec.update([0], a, [0])
    rec.end_epoch()
    rec.update([0], a, [0])   # same as last epoch: d = 0
    rec.update([0], b, [0])   # repeated in the same epoch: ignored for tdds_d
    rec.end_epoch()
    dyn = dp.Dynamics.open(tmp_path / "s")
    assert dyn.tdds_d[1, 0] == 0.0 and np.isnan(dyn.tdds_d[1, 1])


def test_unknown_signal_lists_extra_signals(tmp_path):
    with pytest.raises(ValueError, match="tdds_d"):
        dp.Recorder(3, tmp_path / "s", 2, signals=["nope"])


def test_tdds_d_state_too_large_is_refused_up_front(tmp_path):
    # ImageNet-21K: 14.2M x 21841 float16 = 578 GiB of softmax state -> refused before any
    # store is created, naming N, C and the limit
    with pytest.raises(dp.DataPruneError, match=r"N=14200000, C=21841 needs 577\.\d GiB.*TDDS_D_STATE_LIMIT"):
        dp.Recorder(14_200_000, tmp_path / "s", 21841, signals=["prob", "tdds_d"], epochs=2)
    assert not (tmp_path / "s").exists()
