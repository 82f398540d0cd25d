"""What the commands around a store do for the user: select's default window fits the store
(a short store names the methods it can use), method parameters as flags and --quiet,
`train --subset` takes its data from the keep file's manifest, `plot`, import-official never
writes into a user's folder, select/scores/plot outputs complete-or-absent (stale temps removed),
--image-size checked, and `check` on train runs."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from conftest import cli_error
from dataprune.cli import main
from dataprune.errors import DataPruneError
from dataprune.keepfile import source_info, write_keep
from dataprune.methods import get
from dataprune.record import ALL_SIGNALS, EXTRA_SIGNALS
from dataprune.train.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def store(path: Path, epochs: int, n: int = 12, c: int = 3, signals=ALL_SIGNALS + EXTRA_SIGNALS) -> dp.Dynamics:
    """A store of ``signals`` with ``epochs`` recorded epochs of random logits (N=n, C=c)."""
    rec = dp.Recorder(n, path, c, signals=list(signals))
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        rec.update(torch.arange(n), torch.randn(n, c, generator=g), torch.arange(n) % c,
                   features=torch.randn(n, 4, generator=g))
        rec.end_epoch()
    rec.close()
    return dp.Dynamics.open(path)


def cli(capsys, *args) -> str:
    """Run the CLI, expect success, return stdout."""
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def window_default(method: str, k: int) -> dict:
    return {"window": min(10, k - 1)} if "window" in inspect.signature(get(method).fn).parameters else {}


# --- the default window fits the store; a short store names the usable methods --------------------

def test_select_default_window_fits_a_4_epoch_store(tmp_path, capsys):
    dyn = store(tmp_path / "s", 4)
    out = cli(capsys, "select", dyn.path, "--prune-ratio", 0.5, "--out", tmp_path / "k.txt")
    assert "--window 3, the default min(10, K - 1) with K = 4 recorded epochs" in out
    assert "(dyn-unc --window 3, prune ratio 0.5)" in out
    assert json.loads((tmp_path / "k.json").read_text())["params"] == {"window": 3}
    expected = dp.select(dp.score("dyn-unc", dyn, window=3), 0.5)
    assert np.array_equal(dp.read_keep(tmp_path / "k.txt"), expected)
    # an explicit window is kept; `scores` uses the same default
    assert "--window 2" in cli(capsys, "select", dyn.path, "--window", 2, "--prune-ratio", 0.5,
                               "--out", tmp_path / "k2.txt")
    out = cli(capsys, "scores", dyn.path, "--methods", "dyn-unc,dual,el2n", "--out", tmp_path / "s.csv")
    assert "dyn-unc: --window 3" in out and "dual: --window 3" in out


def test_select_epochs_param_sets_k(tmp_path, capsys):
    dyn = store(tmp_path / "s", 6)
    out = cli(capsys, "select", dyn.path, "--epochs", 4, "--prune-ratio", 0.5, "--out", tmp_path / "k.txt")
    assert "--window 3, the default min(10, K - 1) with K = 4 epochs used (--epochs)" in out
    expected = dp.select(dp.score("dyn-unc", dyn, window=3, epochs=4), 0.5)
    assert np.array_equal(dp.read_keep(tmp_path / "k.txt"), expected)


def test_two_epoch_store_says_which_methods_it_can_use(tmp_path, capsys):
    dyn = store(tmp_path / "s", 2)
    err = cli_error(capsys, "select", dyn.path, "--prune-ratio", 0.5, "--out", tmp_path / "k.txt")
    assert "method 'dyn-unc' needs at least 3 recorded epochs with its default window" in err
    usable = err.split("methods usable with 2: ")[1].split(", ")
    # the list is exactly the methods that select from this store with their defaults
    for i, method in enumerate(dp.list_methods()):
        code = main(["select", str(dyn.path), "--method", method, "--prune-ratio", "0.5",
                     "--out", str(tmp_path / f"k{i}.txt"), "--quiet"])
        capsys.readouterr()
        assert (code == 0) == (method in usable), method
    assert not (tmp_path / "k.txt").exists()


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_min_epochs_agrees_with_the_methods(k, tmp_path):
    """MIN_EPOCHS is a table: each method scores K epochs with its defaults iff K >= min_epochs."""
    from dataprune.cli.select import min_epochs
    dyn = store(tmp_path / "s", k)
    for method in dp.list_methods():
        if get(method).files:
            continue  # they read run files, not epochs (min_epochs 0)
        try:
            dp.score(method, dyn, **window_default(method, k))
            scored = True
        except DataPruneError:
            scored = False
        assert scored == (k >= min_epochs(method)), (method, k)


# --- params as flags, --quiet, class-balanced said ------------------------------------------------

def test_param_flags():
    from dataprune.methods._registry import param_flags
    assert param_flags({"window": 10, "epochs": 3}) == "--window 10 --epochs 3"
    assert param_flags({"num_clusters": 0, "flag": True, "features": "my file.npy"}) == \
        "--num-clusters 0 --flag true --features 'my file.npy'"
    assert param_flags({}) == ""


def test_select_output_flags_and_class_balanced(tmp_path, capsys):
    dyn = store(tmp_path / "s", 4)
    out = cli(capsys, "select", dyn.path, "--window", 2, "--prune-ratio", 0.5, "--class-balanced",
              "--out", tmp_path / "k.txt")
    assert "(dyn-unc --window 2, prune ratio 0.5, class-balanced)" in out and "{" not in out
    out = cli(capsys, "select", dyn.path, "--method", "el2n", "--prune-ratio", 0.5, "--stratified",
              "--out", tmp_path / "k2.txt")
    assert "stratified (CCS) --strata 50" in out


def test_quiet_select_scores_check(tmp_path, capsys):
    dyn = store(tmp_path / "s", 4)
    for args in (["select", dyn.path, "--prune-ratio", 0.5, "--out", tmp_path / "k.txt"],
                 ["scores", dyn.path, "--methods", "dyn-unc,el2n", "--out", tmp_path / "s.csv"],
                 ["check", dyn.path]):
        assert cli(capsys, *args, "--quiet") == ""
    assert (tmp_path / "k.txt").exists() and (tmp_path / "s.csv").exists()


# --- train --subset takes the data from the keep file's manifest ----------------------------------

def test_train_subset_takes_dataset_and_limit_from_manifest(data_dir, tmp_path, capsys):
    labels = load_dataset("idx", data_dir, 40).train_y.numpy()
    keep = tmp_path / "keep.txt"
    write_keep(keep, np.arange(0, 40, 2), {"method": "random", "num_samples": 40, "dataset": "idx",
                                            **source_info(labels, data_dir)})
    m = tmp_path / "m.json"
    # no --dataset/--data-dir/--limit: fashion-mnist's 60000 samples before the fix
    assert main(["train", "--subset", str(keep), "--model", "mlp", "--epochs", "1", "--threads", "1",
                 "--metrics-out", str(m)]) == 0
    err = capsys.readouterr().err
    assert "--subset" in err and "--dataset idx" in err and "--limit 40" in err
    metrics = json.loads(m.read_text())
    assert metrics["train_samples"] == 20 and metrics["dataset"] == "idx"
    # an option given wins over the manifest (and read_keep still checks N)
    err = cli_error(capsys, "train", "--subset", keep, "--model", "mlp", "--epochs", 1, "--dataset", "idx",
                    "--data-dir", data_dir, "--limit", 50)
    assert "N=40" in err and "N=50" in err


# --- dataprune plot, the InfoBatch docs -----------------------------------------------------------

def test_plot_datamap(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    dyn = store(tmp_path / "s", 3)
    png = tmp_path / "map.png"
    out = cli(capsys, "plot", dyn.path, "--out", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"-> {png}" in out
    err = cli_error(capsys, "plot", dyn.path, "--out", png)
    assert "already exists; pass --force" in err
    cli(capsys, "select", dyn.path, "--window", 2, "--prune-ratio", 0.5, "--out", tmp_path / "k.txt")
    out = cli(capsys, "plot", dyn.path, "--out", png, "--keep", tmp_path / "k.txt", "--force")
    assert "the 6 pruned by" in out
    assert "expected a .png file" in cli_error(capsys, "plot", dyn.path, "--out", tmp_path / "m.pdf")
    assert "lies inside the store" in cli_error(capsys, "plot", dyn.path, "--out", dyn.path / "m.png")
    assert cli(capsys, "plot", dyn.path) and (tmp_path / "s.datamap.png").is_file()  # default: beside RUN
    bare = store(tmp_path / "p", 3, signals=["prob"])
    assert "needs the signal(s) correct" in cli_error(capsys, "plot", bare.path, "--out", tmp_path / "b.png")


def test_docs_infobatch_uses_stored_losses():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "computes every sample's loss" not in doc.read_text(), doc
    assert "dataprune plot" in (ROOT / "README.md").read_text()


# --- import-official --out ------------------------------------------------------------------------

def official_run(root: Path, epochs: int = 3, n: int = 5) -> Path:
    hist = root / "pred_prob_history"
    hist.mkdir(parents=True)
    for e, row in enumerate(np.random.default_rng(0).random((epochs, n))):
        np.savetxt(hist / f"prob_{e}.txt", row)
    return root


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_import_official_never_writes_into_a_users_folder(force, tmp_path, capsys):
    src = official_run(tmp_path / "o")
    look = tmp_path / "look"                       # looks like a store: array files, no meta.json
    look.mkdir()
    np.save(look / "labels.npy", np.arange(5))
    np.save(look / "prob.npy", np.zeros((2, 5)))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for out in (look, mine):
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        err = cli_error(capsys, "import-official", src, "--num-classes", 2, "--out", out, *force)
        assert "is not a dataprune store" in err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a real store is replaced with --force, refused without; an empty folder is fine
    (tmp_path / "empty").mkdir()
    cli(capsys, "import-official", src, "--num-classes", 2, "--out", tmp_path / "empty")
    if force:
        cli(capsys, "import-official", src, "--num-classes", 2, "--out", tmp_path / "empty", *force)
    else:
        assert "already exists" in cli_error(capsys, "import-official", src, "--num-classes", 2,
                                             "--out", tmp_path / "empty")



def test_import_official_api_never_deletes_a_look_alike_folder(tmp_path):
    """The library, not only the CLI: force=True on a folder of array files without a store
    meta.json deletes nothing (it used to pass store.is_store_dir, made for cut-short stores)."""
    from dataprune.interop import import_official
    src = official_run(tmp_path / "o")
    look = tmp_path / "look"
    look.mkdir()
    np.save(look / "labels.npy", np.arange(5))
    np.save(look / "prob.npy", np.zeros((2, 5)))
    before = {p.name: p.read_bytes() for p in look.iterdir()}
    with pytest.raises(dp.DataPruneError, match="is not a dataprune store"):
        import_official(src, look, num_classes=2, force=True)
    assert {p.name: p.read_bytes() for p in look.iterdir()} == before

# --- select / scores outputs complete-or-absent, stale temps removed ------------------------------

def test_select_rerun_after_kill_between_manifest_and_keep_file(tmp_path, capsys):
    dyn = store(tmp_path / "s", 4)
    keep = tmp_path / "k.txt"
    cli(capsys, "select", dyn.path, "--prune-ratio", 0.5, "--out", keep)
    keep.unlink()                    # what a kill after the manifest, before the keep file leaves
    cli(capsys, "select", dyn.path, "--prune-ratio", 0.25, "--out", keep)   # no --force needed
    assert len(dp.read_keep(keep)) == 9
    # a .json of the user's own (not a manifest of this keep file) is still refused
    keep.unlink()
    (tmp_path / "k.json").write_text('{"mine": 1}')
    assert "k.json already exists" in cli_error(capsys, "select", dyn.path, "--prune-ratio", 0.5,
                                                "--out", keep)


def test_select_orphan_file_list_replaced(tmp_path, capsys):
    src = official_run(tmp_path / "o", epochs=4, n=6)
    (tmp_path / "fl.txt").write_text("".join(f"c{i % 2}/img{i}.png {i % 2}\n" for i in range(6)))
    cli(capsys, "import-official", src, "--file-list", tmp_path / "fl.txt", "--out", tmp_path / "st")
    keep, listed = tmp_path / "k.txt", tmp_path / "k.list"
    cli(capsys, "select", tmp_path / "st", "--prune-ratio", 0.5, "--out", keep, "--file-list", listed)
    assert json.loads((tmp_path / "k.json").read_text())["file_list"] == str(listed.resolve())
    keep.unlink()                    # killed after the manifest and the file list
    cli(capsys, "select", tmp_path / "st", "--prune-ratio", 0.5, "--out", keep, "--file-list", listed)
    assert len(listed.read_text().splitlines()) == 3 and len(dp.read_keep(keep)) == 3


def test_select_scores_plot_remove_stale_temps(tmp_path, capsys):
    dyn = store(tmp_path / "s", 4)
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".k.txt.abcd1234.tmp", out / ".k.json.x_y-1234.tmp", out / ".s.csv.00000000.tmp"]
    kept = [out / ".k.txt.tmp", out / ".other.abcd1234.tmp", out / "k.txt.abcd1234.tmp"]
    for p in stale + kept:
        p.write_text("partial")
    cli(capsys, "select", dyn.path, "--prune-ratio", 0.5, "--out", out / "k.txt")
    cli(capsys, "scores", dyn.path, "--methods", "el2n", "--out", out / "s.csv")
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert sorted(p.name for p in out.iterdir() if p not in kept) == ["k.json", "k.txt", "s.csv"]


def test_write_keep_leaves_no_temp_when_interrupted(tmp_path, monkeypatch):
    from dataprune import keepfile
    def killed(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(keepfile, "atomic_write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        write_keep(tmp_path / "k.txt", np.arange(3), {"method": "random"})
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]     # manifest only: an orphan
    monkeypatch.undo()
    write_keep(tmp_path / "k.txt", np.arange(3), {"method": "random"})  # the rerun replaces it
    assert np.array_equal(dp.read_keep(tmp_path / "k.txt"), np.arange(3))


# --- --image-size, check on train run folders -----------------------------------------------------

@pytest.mark.parametrize("size", [0, -3])
def test_image_size_must_be_positive(size, data_dir, tmp_path, capsys):
    for command in (["record", "--out", tmp_path / "r"], ["train", "--metrics-out", tmp_path / "m.json"],
                    ["bench", "--out", tmp_path / "b"]):
        err = cli_error(capsys, *command, "--dataset", "idx", "--data-dir", data_dir, "--image-size", size)
        assert f"--image-size {size}; expected a crop size of at least 1 pixel" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "m.json").exists() and not (tmp_path / "b").exists()


def test_check_train_run(data_dir, tmp_path, capsys):
    run = tmp_path / "t"
    cli(capsys, "train", "--dataset", "idx", "--data-dir", data_dir, "--model", "mlp", "--epochs", 2,
        "--prune-at", 1, "--method", "el2n", "--prune-ratio", 0.3, "--out", run, "--threads", 1, "--quiet")
    out = cli(capsys, "check", run)
    assert out.startswith(f"OK: train run {run} (finished, 2 epochs)") and "keep file of 42 of 60 samples" in out
    assert "metrics.json (test accuracy" in out
    assert cli(capsys, "check", run, "--quiet") == ""
    lines = (run / "keep.txt").read_text().splitlines()
    (run / "keep.txt").write_text("\n".join(lines[:-1]) + "\n")       # truncated keep file
    assert "is truncated or was edited" in cli_error(capsys, "check", run)


def test_writing_without_a_directory_lock(tmp_path, monkeypatch, capsys):
    """A folder that cannot be flock'ed (some network file systems): the write still happens,
    but no temp file is removed (it might be another writer's)."""
    import fcntl

    def refuse(fd, op):
        raise OSError(9, "Bad file descriptor")
    dyn = store(tmp_path / "s", 4)
    out = tmp_path / "out"
    out.mkdir()
    temp = out / ".k.txt.abcd1234.tmp"
    temp.write_text("partial")
    monkeypatch.setattr(fcntl, "flock", refuse)
    cli(capsys, "select", dyn.path, "--prune-ratio", 0.5, "--out", out / "k.txt")
    assert temp.exists() and len(dp.read_keep(out / "k.txt")) == 6
