"""Early scoring: ``epochs=T`` means "use only the first T recorded epochs", for every
dynamics method, and equals scoring a store that holds only those T epochs."""
import inspect
import json

import numpy as np
import pytest

import dataprune as dp
from dataprune.cli import main
from dataprune.methods import get
from dataprune.methods.dual import mean_prob
from helpers_methods import dynamics_methods, needed_signals, with_window, write_store

N, K, C = 30, 12, 3
#: every registered method that reads per-epoch dynamics, with parameters that fit T = 7
DYNAMICS_METHODS = {name: with_window(name, 3) for name in dynamics_methods()}


def _signals(rng):
    prob = rng.random((K, N)).astype(np.float16)
    prob[rng.random(prob.shape) < 0.1] = np.nan
    correct = (rng.random((K, N)) < 0.6).astype(np.int8)
    correct[np.isnan(prob)] = -1
    out = {"prob": prob, "correct": correct}
    for name in [s for s in needed_signals() if s not in out]:  # what further methods read
        out[name] = rng.random((K, N)).astype(np.float16)
    out["tdds_d"][0] = np.nan  # the change from the epoch before: none at epoch 0
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("early")
    sig = _signals(np.random.default_rng(0))
    labels = np.arange(N) % C
    full = write_store(root / "full", sig, labels, C)
    first7 = write_store(root / "first7", {k: v[:7] for k, v in sig.items()}, labels, C)
    return full, first7


def test_every_dynamics_method_takes_epochs():
    for name in DYNAMICS_METHODS:
        p = inspect.signature(get(name).fn).parameters
        assert "epochs" in p and p["epochs"].default == 0, name


@pytest.mark.parametrize("method", sorted(DYNAMICS_METHODS))
def test_epochs_equals_scoring_the_first_epochs(stores, method):
    full, first7 = stores
    params = DYNAMICS_METHODS[method]
    early = dp.score(method, full, epochs=7, **params)
    np.testing.assert_array_equal(early, dp.score(method, first7, **params))
    np.testing.assert_array_equal(dp.score(method, full, epochs=0, **params), dp.score(method, full, **params))
    np.testing.assert_array_equal(dp.score(method, full, epochs=K, **params), dp.score(method, full, **params))


@pytest.mark.parametrize("method", sorted(DYNAMICS_METHODS))
def test_more_epochs_than_recorded_is_one_clear_error(stores, method):
    with pytest.raises(ValueError, match=rf"epochs=13 with {K} recorded epochs") as e:
        dp.score(method, stores[0], epochs=13, **DYNAMICS_METHODS[method])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("method,params,match", [
    ("dyn-unc", {"window": 5}, r"window=5 with epochs=5 used of 12 recorded"),
    ("dual", {"window": 6}, r"window=6 with epochs=5 used of 12 recorded"),
    ("tdds", {"window": 6}, r"window=6 with 5 epochs used"),
])
def test_window_too_long_for_the_epochs_names_both(stores, method, params, match):
    with pytest.raises(ValueError, match=match):
        dp.score(method, stores[0], epochs=5, **params)


def test_el2n_epoch_is_resolved_within_the_first_epochs(stores):
    full, _ = stores
    # default epoch -1 = round(0.1 * T): T = 7 -> epoch 1 (K = 12 -> epoch 1 as well), T = 5 -> 1
    np.testing.assert_array_equal(dp.score("el2n", full, epochs=7),
                                  np.asarray(full["el2n"][1], np.float64))
    with pytest.raises(ValueError, match=r"epoch=8.*epochs=7 used of 12 recorded"):
        dp.score("el2n", full, epoch=8, epochs=7)


def test_forgetting_never_learned_counts_the_used_epochs(tmp_path):
    correct = np.zeros((6, 2), np.int8)
    correct[:, 1] = [1, 0, 1, 0, 1, 0]
    dyn = write_store(tmp_path / "f", {"correct": correct}, np.zeros(2, np.int64), 2)
    # sample 0 never learned -> T; sample 1 forgotten at epochs 1, 3 (T = 4) / 1, 3, 5 (all)
    assert dp.score("forgetting", dyn, epochs=4).tolist() == [4.0, 2.0]
    assert dp.score("forgetting", dyn).tolist() == [6.0, 3.0]


def test_keep_history_none_store_refuses_early_epochs(tmp_path):
    import torch
    rec = dp.Recorder(8, tmp_path / "d", 2, keep_history="window", window=2)
    for _ in range(4):
        rec.update(torch.arange(8), torch.randn(8, 2), torch.arange(8) % 2)
        rec.end_epoch()
    rec.close()
    dyn = dp.Dynamics.open(tmp_path / "d")
    assert dp.score("dyn-unc", dyn, window=2, epochs=0).shape == (8,)
    with pytest.raises(ValueError, match="keeps no prob history"):
        dp.score("dyn-unc", dyn, window=2, epochs=3)


# --- CLI ---------------------------------------------------------------------------------
def test_select_epochs_flag(stores, tmp_path, capsys):
    full, first7 = stores
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    assert main(["select", str(full.path), "--method", "dual", "--window", "3", "--epochs", "7",
                 "--prune-ratio", "0.5", "--out", str(a)]) == 0
    assert main(["select", str(first7.path), "--method", "dual", "--window", "3",
                 "--prune-ratio", "0.5", "--out", str(b)]) == 0
    assert a.read_text() == b.read_text()
    assert json.loads(a.with_suffix(".json").read_text())["params"] == {"window": 3, "epochs": 7}
    capsys.readouterr()
    assert main(["select", str(full.path), "--method", "dyn-unc", "--epochs", "40",
                 "--prune-ratio", "0.5", "--out", str(tmp_path / "c.txt")]) == 2
    err = capsys.readouterr().err
    assert "epochs=40 with 12 recorded epochs" in err and len(err.strip().splitlines()) == 1


def test_select_help_explains_epochs(capsys):
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 = all recorded epochs" in out and "--beta-sampling" in out


def test_select_beta_sampling_cli(stores, tmp_path, capsys):
    full, _ = stores
    out = tmp_path / "k.txt"
    args = ["select", str(full.path), "--method", "dual", "--window", "3", "--epochs", "7",
            "--prune-ratio", "0.8", "--beta-sampling", "--beta-seed", "3", "--nan-policy", "prune"]
    assert main([*args, "--out", str(out)]) == 0
    kept = np.loadtxt(out, dtype=np.int64)
    scores = dp.score("dual", full, window=3, epochs=7)
    mu = mean_prob(full["prob"], 7)
    expected = dp.select_beta(scores, mu, 0.8, seed=3, nan_policy="prune")
    assert kept.tolist() == expected.tolist() and len(kept) == 6
    sel = json.loads(out.with_suffix(".json").read_text())["selection"]
    assert sel["beta_sampling"] is True and sel["beta_seed"] == 3 and sel["mean_prob_epochs"] == 7
    capsys.readouterr()
    for bad in (["--stratified"], ["--class-balanced"]):
        assert main([*args, *bad, "--out", str(tmp_path / "x.txt")]) == 2
        assert "cannot be combined" in capsys.readouterr().err
    assert main(["select", str(full.path), "--method", "dual", "--window", "3", "--prune-ratio", "0.5",
                 "--beta-seed", "2", "--out", str(tmp_path / "y.txt")]) == 2
    assert "need --beta-sampling" in capsys.readouterr().err
