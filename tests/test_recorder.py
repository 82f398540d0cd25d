import json

import numpy as np
import pytest
import torch

import dataprune as dp


def logits_for(p_true: np.ndarray, targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Logits whose softmax gives probability p_true to the target class, rest uniform."""
    n = len(targets)
    probs = np.tile(((1 - p_true) / (num_classes - 1))[:, None], (1, num_classes))
    probs[np.arange(n), targets] = p_true
    return torch.tensor(np.log(probs), dtype=torch.float32)


def test_out_of_order_repeated_and_unobserved(tmp_path):
    rec = dp.Recorder(6, tmp_path / "s", 3, epochs=2)
    y = np.array([0, 1, 2, 0, 1, 2])
    # epoch 0: out of order; index 4 twice in one batch and again in a later batch: last wins
    rec.update(torch.tensor([4, 0, 4]), logits_for(np.array([0.1, 0.2, 0.3]), y[[4, 0, 4]], 3),
               torch.tensor(y[[4, 0, 4]]))
    rec.update(np.array([2, 4]), logits_for(np.array([0.6, 0.7]), y[[2, 4]], 3), y[[2, 4]])
    assert rec.end_epoch() == 1
    # epoch 1: only sample 5
    rec.update([5], logits_for(np.array([0.9]), y[[5]], 3), [2])
    rec.end_epoch()
    rec.close()
    dyn = dp.Dynamics.open(tmp_path / "s")
    nan = np.nan
    np.testing.assert_allclose(dyn.prob.astype(float), [[0.2, nan, 0.6, nan, 0.7, nan],
                                                        [nan, nan, nan, nan, nan, 0.9]], atol=1e-3)
    # probability of the labelled class > 1/3 is correct only if it is the argmax
    assert dyn.correct.tolist() == [[0, -1, 1, -1, 1, -1], [-1, -1, -1, -1, -1, 1]]
    assert dyn.labels.tolist() == [0, -1, 2, -1, 1, 2]
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["epochs"] == 2


def test_reopen_identical_and_meta_epochs(tmp_path):
    g = torch.Generator().manual_seed(0)
    rec = dp.Recorder(50, tmp_path / "s", 5, signals=dp.record.ALL_SIGNALS, epochs=3)
    seen = {s: [] for s in dp.record.ALL_SIGNALS}
    for epoch in range(5):  # more epochs than planned: capacity grows
        logits, y = torch.randn(50, 5, generator=g), torch.randint(0, 5, (50,), generator=g)
        perm = torch.randperm(50, generator=g)
        for chunk in perm.split(16):
            rec.update(chunk, logits[chunk], y[chunk])
        p = torch.softmax(logits, 1)
        seen["prob"].append(p[torch.arange(50), y].numpy())
        seen["correct"].append((logits.argmax(1) == y).numpy())
        seen["el2n"].append((p - torch.nn.functional.one_hot(y, 5)).norm(dim=1).numpy())
        seen["entropy"].append(-(p * p.log()).sum(1).numpy())
        other = logits.clone()
        other[torch.arange(50), y] = -np.inf
        seen["margin"].append((logits[torch.arange(50), y] - other.max(1).values).numpy())
        rec.end_epoch()
    first = dp.Dynamics.open(tmp_path / "s")
    second = dp.Dynamics.open(tmp_path / "s")
    assert first.epochs == 5 and first.prob.shape == (5, 50)
    for s in dp.record.ALL_SIGNALS:
        np.testing.assert_array_equal(first[s], second[s])
        np.testing.assert_allclose(first[s].astype(float), np.array(seen[s], dtype=float),
                                   rtol=2e-3, atol=2e-3)
    assert first.fingerprint == second.fingerprint


def test_meta_counts_only_finished_epochs(tmp_path):
    rec = dp.Recorder(4, tmp_path / "s", 2, epochs=3)
    rec.update([0, 1], torch.zeros(2, 2), [0, 1])
    rec.end_epoch()
    rec.update([2, 3], torch.zeros(2, 2), [0, 1])  # an unfinished epoch is not in the store
    assert dp.Dynamics.open(tmp_path / "s").epochs == 1


def test_errors(tmp_path):
    rec = dp.Recorder(4, tmp_path / "s", 3)
    with pytest.raises(ValueError, match=r"indices out of range \(got 0\.\.4\); expected 0\.\.3"):
        rec.update([0, 4], torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match=r"targets out of range .*expected 0\.\.2"):
        rec.update([0, 1], torch.zeros(2, 3), [0, 3])
    with pytest.raises(ValueError, match="batch sizes differ"):
        rec.update([0, 1], torch.zeros(3, 3), [0, 1])
    with pytest.raises(ValueError, match=r"expected \(B, 3\)"):
        rec.update([0, 1], torch.zeros(2, 4), [0, 1])
    with pytest.raises(ValueError, match="integer dtype"):
        rec.update(torch.tensor([0.0, 1.0]), torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match="NaN or inf"):
        rec.update([0, 1], torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]), [0, 1])
    with pytest.raises(ValueError, match="already exists"):
        dp.Recorder(4, tmp_path / "s", 3)
    with pytest.raises(ValueError, match="num_classes=1"):
        dp.Recorder(4, tmp_path / "t", 1)


def test_nan_policy_omit(tmp_path):
    rec = dp.Recorder(2, tmp_path / "s", 2, nan_policy="omit")
    rec.update([0, 1], torch.tensor([[float("nan"), 0.0], [2.0, 0.0]]), [0, 0])
    rec.end_epoch()
    prob = dp.Dynamics.open(tmp_path / "s").prob
    assert np.isnan(prob[0, 0]) and prob[0, 1] > 0.8


def test_with_index_and_loader():
    base = torch.utils.data.TensorDataset(torch.arange(10.0)[:, None], torch.arange(10) % 2)
    loader = torch.utils.data.DataLoader(dp.WithIndex(base), batch_size=4, shuffle=True)
    seen = []
    for x, y, idx in loader:
        assert torch.equal(x[:, 0], idx.float())
        seen += idx.tolist()
    assert sorted(seen) == list(range(10))
