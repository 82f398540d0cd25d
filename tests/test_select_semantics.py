"""Selection semantics: Dyn-Unc's fast path is chunk-invariant, CCS's Beta sampling drops by
difficulty, ties are broken by a seed (never by class order), a ratio keeping nothing and a
keep file on other data are refused, and ``keep=`` / ``--keep`` selects a count."""
import json
import os

import numpy as np
import pytest
from hypothesis import settings

import dataprune as dp
from dataprune.methods import dyn_unc
from dataprune.cli import main
from helpers_methods import write_store
from conftest import cli_error


# ------------------------------------------------------------------ chunk invariance, CI
def test_dyn_unc_fast_path_chunk_invariant_float64():
    """The reported failure: float64, no NaN, 10 windows; a 1-column chunk summed its windows
    pairwise (r.sum(0)), a wide chunk row by row, and the two differed by ~1e-16."""
    prob = np.random.default_rng(0).random((12, 30))
    wide = dyn_unc(prob, 2)
    for chunk in (1, 2, 7, 30):
        np.testing.assert_array_equal(dyn_unc(prob, 2, chunk_size=chunk), wide)


def test_dyn_unc_fast_path_chunk_invariant_float16():
    prob = np.random.default_rng(1).random((40, 50)).astype(np.float16)
    np.testing.assert_array_equal(dyn_unc(prob, 10, chunk_size=1), dyn_unc(prob, 10))


@pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci", reason="explore profile")
def test_hypothesis_is_derandomized_by_default():
    assert settings.default.derandomize and settings.default.database is None
    assert settings.default.print_blob


# ------------------------------------------------------------------ CCS beta by difficulty
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
    u = dyn_unc(dyn, 5)
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
    assert 0 in kept and 1 not in kept and len(kept) == 8  # drops 1 (hardest) and one 0.0
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


# ------------------------------------------------------------------ seeded tie-breaking
def forgetting_like(n=1000, classes=10):
    """Class-sorted labels (as image folders are) and integer scores, 45 % tied at 0."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), n // classes)
    scores = np.where(rng.random(n) < 0.45, 0, rng.integers(1, 6, n)).astype(float)
    return scores, labels


def test_ties_do_not_skew_classes_on_class_sorted_data():
    scores, labels = forgetting_like()
    keep = dp.select(scores, 0.25)
    frac = np.bincount(labels[keep], minlength=10) / 100
    assert np.abs(frac - 0.75).max() < 0.12, frac  # index order: 1.0 for class 0 ... 0.5 for the last
    assert dp.select(scores, 0.25).tolist() == keep.tolist()              # reproducible
    assert dp.select(scores, 0.25, seed=0).tolist() == keep.tolist()      # 0 is the default
    other = dp.select(scores, 0.25, seed=1)
    assert other.tolist() != keep.tolist() and len(other) == len(keep)
    assert scores[other].min() == scores[keep].min() == 0                 # still the top scores
    with pytest.raises(ValueError, match="seed=-1"):
        dp.select(scores, 0.25, seed=-1)


def test_select_cli_seed_breaks_ties_for_every_method(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n, k = 300, 4
    labels = np.repeat(np.arange(3), n // 3)
    correct = (rng.random((k, n)) < 0.8).astype(np.int8)
    dyn = write_store(tmp_path / "store", {"correct": correct, "prob": rng.random((k, n))}, labels, 3)
    kept = {}
    for seed in (None, 0, 7):
        out = tmp_path / f"keep{seed}.txt"
        extra = [] if seed is None else ["--seed", str(seed)]
        assert main(["select", str(dyn.path), "--method", "forgetting", "--prune-ratio", "0.3",
                     "--out", str(out), *extra]) == 0
        kept[seed] = np.loadtxt(out, dtype=np.int64).tolist()
        assert json.loads(out.with_suffix(".json").read_text())["selection"]["tie_seed"] == (seed or 0)
    assert kept[None] == kept[0] != kept[7]
    assert main(["select", str(dyn.path), "--method", "dyn-unc", "--window", "2", "--seed", "3",
                 "--prune-ratio", "0.3", "--out", str(tmp_path / "d.txt")]) == 0
    assert main(["select", str(dyn.path), "--method", "forgetting", "--seed", "-1", "--prune-ratio", "0.3",
                 "--out", str(tmp_path / "bad.txt")]) == 2
    assert "seed=-1" in capsys.readouterr().err
    assert main(["select", str(dyn.path), "--method", "forgetting", "--seed", "2", "--stratified",
                 "--prune-ratio", "0.3", "--out", str(tmp_path / "bad.txt")]) == 2
    assert "with --stratified the sampling (and its ties) is seeded by --stratified-seed" in capsys.readouterr().err


# ------------------------------------------------------------------ empty keep, other data
def test_ratio_keeping_nothing_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"prune_ratio=0.9999999 keeps 0 of 10 samples; expected prune_ratio < 1 - 0.5/N = 0.95"):
        dp.select(np.arange(10.0), 0.9999999)
    with pytest.raises(ValueError, match="keeps 0 of"):
        dp.select_stratified(np.arange(10.0), 0.96)
    assert len(dp.select(np.arange(10.0), 0.94)) == 1
    dyn, _ = planted_store(tmp_path / "store")
    out = tmp_path / "keep.txt"
    assert main(["select", str(dyn.path), "--window", "5", "--prune-ratio", "0.9999999", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "keeps 0 of 200 samples" in err and not out.exists()


def other_idx_dir(src, dst):
    """A copy of IDX folder ``src`` with the training labels shuffled (same N)."""
    import shutil

    from conftest import write_idx
    from dataprune.train.data import load_dataset
    shutil.copytree(src, dst)
    labels = load_dataset("idx", src).train_y.numpy()
    (dst / "train-labels-idx1-ubyte.gz").unlink()
    write_idx(dst / "train-labels-idx1-ubyte.gz", np.random.default_rng(1).permutation(labels))
    return dst


def test_keep_file_is_refused_on_other_data_with_the_same_n(tiny_idx_dir, tmp_path, capsys):
    from dataprune.keepfile import read_keep
    from dataprune.train.data import load_dataset
    data = load_dataset("idx", tiny_idx_dir)
    run = tmp_path / "run"   # a scoring run's layout: config.json + dynamics/
    labels = data.train_y.numpy()
    rng = np.random.default_rng(0)
    write_store(run / "dynamics", {"prob": rng.random((4, 300))}, labels, 10)
    (run / "config.json").write_text(json.dumps({"command": "score", "data_dir": str(tiny_idx_dir)}))
    keep = tmp_path / "keep.txt"
    assert main(["select", str(run), "--window", "2", "--prune-ratio", "0.5", "--out", str(keep)]) == 0
    manifest = json.loads(keep.with_suffix(".json").read_text())
    assert manifest["data_dir"] == str(tiny_idx_dir.resolve()) and len(manifest["labels_digest"]) == 32
    other = other_idx_dir(tiny_idx_dir, tmp_path / "other")
    assert main(["train", "--dataset", "idx", "--data-dir", str(other), "--subset", str(keep),
                 "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "selected on other training labels" in err and str(other.resolve()) in err
    # the same labels are accepted, also from a moved copy; old manifests (no digest) as before
    assert len(read_keep(keep, 300, labels=labels, data_dir=tmp_path / "moved")) == 150
    old = json.loads(keep.with_suffix(".json").read_text())
    del old["labels_digest"], old["data_dir"]
    keep.with_suffix(".json").write_text(json.dumps(old))
    assert len(read_keep(keep, 300, labels=np.zeros(300, np.int64))) == 150


def test_store_with_unknown_labels_records_no_digest(tmp_path):
    dyn = write_store(tmp_path / "s", {"prob": np.random.default_rng(0).random((4, 20))}, np.full(20, -1), 2)
    keep = tmp_path / "k.txt"
    assert main(["select", str(dyn.path), "--window", "2", "--prune-ratio", "0.5", "--out", str(keep)]) == 0
    manifest = json.loads(keep.with_suffix(".json").read_text())
    assert manifest["labels_digest"] is None and manifest["data_dir"] is None


def test_keep_count(tmp_path, capsys):
    s = np.array([0.1, 0.9, 0.5, 0.9, 0.2])
    assert dp.select(s, keep=3).tolist() == dp.select(s, 0.4).tolist() == [1, 2, 3]
    assert dp.select(s, keep=5).tolist() == [0, 1, 2, 3, 4]
    assert len(dp.select_stratified(s, keep=2, strata=2)) == 2
    for bad, msg in (({"keep": 0}, "keep=0; expected an integer in 1..5"),
                     ({"keep": 6}, "keep=6; expected an integer in 1..5"),
                     ({"keep": 2.5}, "keep=2.5; expected an integer"),
                     ({"keep": 2, "prune_ratio": 0.5}, "prune_ratio or keep, not both"),
                     ({}, "prune_ratio or keep")):
        with pytest.raises(ValueError, match=msg):
            dp.select(s, **bad)
    dyn, _ = planted_store(tmp_path / "store")
    base = ["select", str(dyn.path), "--window", "5", "--out", str(tmp_path / "k.txt")]
    assert main(base + ["--keep", "150"]) == 0
    assert len(np.loadtxt(tmp_path / "k.txt")) == 150
    assert "keep=201; expected an integer in 1..200" in cli_error(capsys, *base, "--keep", 201, "--force")
    with pytest.raises(SystemExit) as exit_:
        main(base + ["--keep", "5", "--prune-ratio", "0.5", "--force"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
