"""The paper's official code: importing its runs (``import-official`` infers C or refuses
before writing, bad files are one-line errors, no partial store is left) and its Dyn-Unc
semantics (``semantics="official"``) against a plain loop of get_coreset.py, on a store and
through ``select --keep``."""
import json

import numpy as np
import pytest

import dataprune as dp
from dataprune.cli import main
from dataprune.methods import dyn_unc
from helpers_methods import write_store
from conftest import cli_error


# ------------------------------------------------------------------ import-official
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


# ------------------------------------------------------------------ the official Dyn-Unc semantics
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
