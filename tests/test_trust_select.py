"""Selection semantics found by the trust review (issue 10, items 1 and 11-15)."""
import json
import os

import numpy as np
import pytest
from hypothesis import settings

import dataprune as dp
from dataprune.cli import main
from helpers_methods import write_store


# ------------------------------------------------------------------ 1: chunk invariance, CI
def test_dyn_unc_fast_path_chunk_invariant_float64():
    """The reported failure: float64, no NaN, 10 windows; a 1-column chunk summed its windows
    pairwise (r.sum(0)), a wide chunk row by row, and the two differed by ~1e-16."""
    prob = np.random.default_rng(0).random((12, 30))
    wide = dp.dyn_unc(prob, 2)
    for chunk in (1, 2, 7, 30):
        np.testing.assert_array_equal(dp.dyn_unc(prob, 2, chunk_size=chunk), wide)


def test_dyn_unc_fast_path_chunk_invariant_float16():
    prob = np.random.default_rng(1).random((40, 50)).astype(np.float16)
    np.testing.assert_array_equal(dp.dyn_unc(prob, 10, chunk_size=1), dp.dyn_unc(prob, 10))


@pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci", reason="explore profile")
def test_hypothesis_is_derandomized_by_default():
    assert settings.default.derandomize and settings.default.database is None
    assert settings.default.print_blob


# ------------------------------------------------------------------ 11: CCS beta by difficulty
def planted_store(path, signals=("prob", "margin", "correct")):
    """N=200, K=12: 20 mislabeled (prob ~0.02, margin ~-4, never correct), 60 uncertain
    (prob jumps in [0.2, 0.9]), 120 easy (prob ~0.97). Returns (store, mislabeled indices)."""
    rng = np.random.default_rng(0)
    n, k = 200, 12
    kind = rng.permutation(np.repeat([0, 1, 2], [20, 60, 120]))  # 0 mislabeled, 1 uncertain, 2 easy
    prob = np.where(kind == 0, 0.02, np.where(kind == 1, 0.5, 0.97)) + rng.normal(0, 0.01, (k, n))
    prob[:, kind == 1] = rng.uniform(0.2, 0.9, (k, int((kind == 1).sum())))
    margin = np.where(kind == 0, -4.0, np.where(kind == 1, 0.5, 5.0)) + rng.normal(0, 0.3, (k, n))
    arrays = {"prob": np.clip(prob, 0, 1), "margin": margin,
              "correct": np.where(kind == 2, 1, np.where(kind == 0, 0, rng.integers(0, 2, (k, n))))}
    dyn = write_store(path, {s: arrays[s] for s in signals}, np.arange(n) % 3, 3)
    return dyn, np.flatnonzero(kind == 0)


def test_beta_drops_planted_mislabeled_not_the_most_uncertain(tmp_path):
    dyn, mislabeled = planted_store(tmp_path / "store")
    u = dp.dyn_unc(dyn, 5)
    most_uncertain = np.argsort(-u, kind="stable")[:20]
    keep = tmp_path / "ccs.txt"
    assert main(["select", str(dyn.path), "--method", "dyn-unc", "--window", "5", "--prune-ratio", "0.5",
                 "--stratified", "--beta", "0.1", "--strata", "5", "--out", str(keep)]) == 0
    kept = np.loadtxt(keep, dtype=np.int64)
    assert len(kept) == 100 and not np.isin(mislabeled, kept).any()  # all 20 dropped by AUM
    assert np.isin(most_uncertain, kept).sum() >= 5                  # Dyn-Unc's best survive
    manifest = json.loads(keep.with_suffix(".json").read_text())
    assert manifest["selection"]["beta_by"] == "aum"
    # the same through the API, and with forgetting (never learned = hardest)
    for measure in ("aum", "forgetting", "confidence"):
        got = dp.select_stratified(u, 0.5, beta=0.1, difficulty=dp.difficulty(measure, dyn), strata=5)
        assert not np.isin(mislabeled, got).any(), measure


def test_beta_needs_a_difficulty_and_its_signal(tmp_path, capsys):
    with pytest.raises(ValueError, match="beta=0.1 needs difficulty"):
        dp.select_stratified(np.arange(10.0), 0.5, beta=0.1)
    with pytest.raises(ValueError, match=r"difficulty has shape \(3,\)"):
        dp.select_stratified(np.arange(10.0), 0.5, beta=0.1, difficulty=np.ones(3))
    # NaN difficulty (never observed) is never dropped
    hard = np.array([np.nan, 5.0] + [0.0] * 8)
    kept = dp.select_stratified(np.ones(10), 0.2, beta=0.2, difficulty=hard, strata=1)
    assert kept.tolist() == [0, 3, 4, 5, 6, 7, 8, 9]  # drops 1 (hardest), then 2 (lower index)
    dyn, _ = planted_store(tmp_path / "prob-only", signals=("prob",))
    args = ["select", str(dyn.path), "--method", "dyn-unc", "--window", "5", "--prune-ratio", "0.5",
            "--stratified", "--beta", "0.1", "--out", str(tmp_path / "k.txt")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'aum' needs signal(s) ['margin']" in err and "confidence" in err
    assert not (tmp_path / "k.txt").exists()
    assert main(args + ["--beta-by", "confidence"]) == 0
    assert main(["select", str(dyn.path), "--prune-ratio", "0.5", "--window", "5", "--beta-by", "aum",
                 "--out", str(tmp_path / "k2.txt")]) == 2
    assert "--beta-by aum needs --stratified --beta" in capsys.readouterr().err
