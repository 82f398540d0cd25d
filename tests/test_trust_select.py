"""Selection semantics found by the trust review (issue 10, items 1 and 11-15)."""
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


# ------------------------------------------------------------------ 1: chunk invariance, CI
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


# ------------------------------------------------------------------ 12: seeded tie-breaking
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


# ------------------------------------------------------------------ 13: empty keep, other data
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


# ------------------------------------------------------------------ 14: import-official
def official_run(root, prob, file_list=None):
    """The official layout: ROOT/pred_prob_history/prob_{epoch}.txt (np.savetxt's %.18e)."""
    hist = root / "pred_prob_history"
    hist.mkdir(parents=True)
    for e, row in enumerate(prob):
        np.savetxt(hist / f"prob_{e}.txt", row)
    if file_list is not None:
        (root / "file_list.txt").write_text("".join(f"/n{y:02d}/img{i}.JPEG {y}\n" for i, y in enumerate(file_list)))
    return root


def test_import_official_infers_c_or_refuses_before_writing(tmp_path, capsys):
    prob = np.random.default_rng(0).random((12, 30))
    src = official_run(tmp_path / "o", prob, file_list=np.arange(30) % 4)
    out = tmp_path / "store"
    err = cli_error(capsys, "import-official", src, "--out", out)
    assert "needs the run's file list (--file-list FILE" in err and "--num-classes" in err
    assert not out.exists()                                        # nothing written
    assert main(["import-official", str(src), "--file-list", str(src / "file_list.txt"),
                 "--out", str(out)]) == 0                            # the corrected rerun works
    assert dp.Dynamics.open(out).num_classes == 4
    assert "label 3 but num_classes=3" in cli_error(capsys, "import-official", src, "--file-list",
                                                    src / "file_list.txt", "--num-classes", 3,
                                                    "--out", tmp_path / "s2")
    assert main(["import-official", str(src), "--num-classes", "4", "--out", str(tmp_path / "s3")]) == 0
    assert not (tmp_path / "s2").exists()


def test_import_official_bad_files_are_one_line_errors(tmp_path, capsys):
    prob = np.random.default_rng(0).random((3, 5))
    empty = official_run(tmp_path / "empty", prob)
    (empty / "pred_prob_history" / "prob_0.txt").write_text("")
    err = cli_error(capsys, "import-official", empty, "--num-classes", 2, "--out", tmp_path / "s")
    assert "prob_0.txt is empty" in err and not (tmp_path / "s").exists()
    twice = official_run(tmp_path / "twice", prob)
    np.savetxt(twice / "pred_prob_history" / "prob_01.txt", prob[1])
    err = cli_error(capsys, "import-official", twice, "--num-classes", 2, "--out", tmp_path / "s")
    assert "both prob_01.txt and prob_1.txt for epoch 1" in err and not (tmp_path / "s").exists()
    fl = tmp_path / "latin1.txt"
    fl.write_bytes("/n01/caf\u00e9.JPEG 0\n".encode("latin-1") * 5)
    err = cli_error(capsys, "import-official", official_run(tmp_path / "o", prob), "--file-list", fl,
                    "--out", tmp_path / "s")
    assert "is not UTF-8 text (byte 0xe9)" in err and not (tmp_path / "s").exists()


def test_import_official_bad_later_file_leaves_no_partial_store(tmp_path, capsys):
    prob = np.random.default_rng(0).random((4, 6))
    src = official_run(tmp_path / "o", prob)
    (src / "pred_prob_history" / "prob_2.txt").write_text("0.5\n" * 5)   # one value short
    out = tmp_path / "store"
    assert "holds 5 values; expected 6" in cli_error(capsys, "import-official", src, "--num-classes", 2,
                                                     "--out", out)
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")                           # a folder the user had
    cli_error(capsys, "import-official", src, "--num-classes", 2, "--out", out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------ 15: official semantics, --keep
def official_reference(prob, window):
    """The official get_coreset.py loop, written plainly: per sample a ring of the last J
    observed values starting from zeros (an unseen epoch, 0 or NaN, leaves it unchanged);
    after epochs t = J-1..K-2 the ring's std (ddof=1) times 10; the mean of those."""
    k, n = prob.shape
    out = []
    for i in range(n):
        ring, stds = [0.0] * window, []
        for t in range(k):
            p = float(prob[t, i])
            if not (np.isnan(p) or p == 0.0):
                ring = ring[1:] + [p]
            if window - 1 <= t < k - 1:
                m = sum(ring) / window
                stds.append(10 * (sum((v - m) ** 2 for v in ring) / (window - 1)) ** 0.5)
        out.append(sum(stds) / len(stds))
    return np.array(out)


def test_official_semantics_hand_case():
    # J=2, K=4, seen at epochs 0, 1, 3: rings [0.2, 0.6] after t=1 and t=2 (unseen: unchanged)
    prob = np.array([[0.2], [0.6], [np.nan], [1.0]])
    np.testing.assert_allclose(dyn_unc(prob, 2, semantics="official"), [10 * 0.4 / 2 ** 0.5])
    np.testing.assert_allclose(dyn_unc(prob, 2), [0.4 / 2 ** 0.5])  # ours skips (0.6, -)


@pytest.mark.parametrize("seed", range(4))
def test_official_semantics_matches_reference_loop(seed):
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(3, 16)), int(rng.integers(1, 40))
    prob = rng.random((k, n))
    prob[rng.random((k, n)) < 0.3] = np.nan          # unobserved
    prob[rng.random((k, n)) < 0.05] = 0.0            # the official "not seen"
    prob[:, 0] = np.nan                              # never seen: ring stays zeros -> 0
    window = int(rng.integers(2, k))
    got = dyn_unc(prob, window, semantics="official")
    np.testing.assert_allclose(got, official_reference(prob, window), rtol=1e-12, atol=1e-15)
    assert got[0] == 0.0
    full = rng.random((k, n))                        # all observed: ours x 10
    np.testing.assert_allclose(dyn_unc(full, window, semantics="official"),
                               10 * dyn_unc(full, window), rtol=1e-12)


def test_official_semantics_on_a_store_and_cli(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.random((12, 50)).astype(np.float16)
    prob[rng.random((12, 50)) < 0.2] = np.nan
    dyn = write_store(tmp_path / "s", {"prob": prob}, np.arange(50) % 2, 2)
    ref = official_reference(np.asarray(dyn.prob, np.float64), 5)
    np.testing.assert_allclose(dp.score("dyn-unc", dyn, window=5, semantics="official"), ref, rtol=1e-12)
    keep = tmp_path / "k.txt"
    assert main(["select", str(dyn.path), "--window", "5", "--semantics", "official", "--keep", "37",
                 "--out", str(keep)]) == 0
    kept = np.loadtxt(keep, dtype=np.int64)
    assert kept.tolist() == sorted(np.argsort(-ref, kind="stable")[:37].tolist())   # int(N*0.75)
    manifest = json.loads(keep.with_suffix(".json").read_text())
    assert manifest["params"]["semantics"] == "official" and manifest["keep"] == 37
    with pytest.raises(ValueError, match="semantics='eq2'; expected one of paper, official"):
        dyn_unc(prob, 5, semantics="eq2")


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
