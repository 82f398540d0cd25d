"""CLI smoke tests on a tiny synthetic IDX dataset: record -> select -> train, the deprecated
`score` alias of `record`, the entry point, help and errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dataprune as dp
from dataprune.methods import dyn_unc
from dataprune.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def test_score_select_train(tiny_idx_dir, tmp_path, capsys):
    run = tmp_path / "run"
    data = ["--dataset", "idx", "--data-dir", tiny_idx_dir]
    assert run_cli("record", *data, "--epochs", 4, "--batch-size", 64, "--out", run, "--quiet") == 0
    for name in ("config.json", "log.jsonl", "checkpoint.pt", "features.npy", "final_logits.npy",
                 "dynamics/meta.json", "dynamics/prob.npy"):
        assert (run / name).exists(), name
    dyn = dp.Dynamics.open(run)
    assert dyn.epochs == 4 and dyn.num_samples == 300 and dyn.view == "clean"
    assert not np.isnan(dyn.prob.astype(float)).any()  # every sample observed every epoch
    assert len((run / "log.jsonl").read_text().splitlines()) == 4
    config = json.loads((run / "config.json").read_text())
    assert config["num_samples"] == 300 and config["record_view"] == "clean"

    keep = tmp_path / "keep.txt"
    assert run_cli("select", run, "--method", "dyn-unc", "--window", 2, "--prune-ratio", 0.25,
                   "--out", keep) == 0
    kept = np.loadtxt(keep, dtype=np.int64)
    np.testing.assert_array_equal(kept, dp.select(dyn_unc(dyn.prob, 2), 0.25))
    manifest = json.loads(keep.with_suffix(".json").read_text())
    assert manifest["method"] == "dyn-unc" and manifest["params"] == {"window": 2}
    assert manifest["num_samples"] == 300 and manifest["kept"] == 225
    assert manifest["store_fingerprint"] == dyn.fingerprint and manifest["dataset"] == "idx"

    metrics = tmp_path / "m.json"
    assert run_cli("train", *data, "--epochs", 2, "--batch-size", 64, "--subset", keep, "--seed", 1,
                   "--metrics-out", metrics, "--quiet") == 0
    m = json.loads(metrics.read_text())
    assert m["train_samples"] == 225 and m["epochs"] == 2 and 0 <= m["test_accuracy"] <= 1 and m["seconds"] > 0
    assert "test accuracy" in capsys.readouterr().out

    # nothing is overwritten without --force
    assert run_cli("select", run, "--window", 2, "--prune-ratio", 0.5, "--out", keep) == 2
    assert "already exists" in capsys.readouterr().err
    assert len(np.loadtxt(keep)) == 225


def test_train_view_and_seeded_repeatability(tiny_idx_dir, tmp_path):
    data = ["--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 120]
    for name in ("a", "b"):
        assert run_cli("record", *data, "--epochs", 3, "--batch-size", 32, "--record-view", "train",
                       "--signals", "prob,correct", "--seed", 3, "--out", tmp_path / name, "--quiet") == 0
    a, b = dp.Dynamics.open(tmp_path / "a"), dp.Dynamics.open(tmp_path / "b")
    assert a.view == "train" and a.signals == ["prob", "correct"] and a.num_samples == 120
    np.testing.assert_array_equal(a.prob, b.prob)


@pytest.mark.parametrize("args,message", [
    (["select", "{run}", "--method", "nope", "--prune-ratio", "0.2", "--out", "{tmp}/k.txt"], "unknown method 'nope'"),
    (["select", "{run}", "--prune-ratio", "1.0", "--out", "{tmp}/k.txt"], "prune_ratio=1.0"),
    (["select", "{run}", "--window", "9", "--prune-ratio", "0.2", "--out", "{tmp}/k.txt"], "window=9"),
    (["select", "{run}", "--method", "random", "--window", "2", "--prune-ratio", "0.2", "--out", "{tmp}/k.txt"],
     "--window does not apply to method 'random'"),
    (["select", "{tmp}/missing", "--prune-ratio", "0.2", "--out", "{tmp}/k.txt"], "no dynamics store"),
    (["train", "--dataset", "idx", "--data-dir", "{tmp}/nothing", "--epochs", "1"], "nothing"),
    (["train", "--dataset", "imagenet", "--epochs", "1"], "unknown dataset"),
    (["train", "--data-dir", "{data}", "--dataset", "idx", "--model", "resnet9000"], "unknown model"),
    (["train", "--data-dir", "{data}", "--dataset", "idx", "--limit", "301"], "301"),
])
def test_errors_are_one_line(args, message, tiny_idx_dir, tmp_path, capsys):
    run = tmp_path / "run"
    rec = dp.Recorder(5, run / "dynamics", 2, epochs=3)
    for _ in range(3):
        import torch
        rec.update([0, 1, 2, 3, 4], torch.randn(5, 2), [0, 1, 0, 1, 0])
        rec.end_epoch()
    filled = [a.format(run=run, tmp=tmp_path, data=tiny_idx_dir) for a in args]
    assert run_cli(*filled) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_score_is_a_deprecated_alias_of_record(tiny_idx_dir, tmp_path, capsys):
    """`dataprune score`, the command's former name, runs `record` with the same options and
    writes the same store, after one note on stderr; its errors name `record`."""
    args = ["--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 60, "--model", "mlp", "--epochs", 2,
            "--batch-size", 32, "--signals", "prob,correct", "--threads", 1, "--quiet"]
    assert run_cli("record", *args, "--out", tmp_path / "new") == 0
    assert capsys.readouterr().err == ""
    assert run_cli("score", *args, "--out", tmp_path / "old") == 0
    note = "dataprune score: deprecated name, use `dataprune record` (same options)"
    assert capsys.readouterr().err.splitlines() == [note]
    for name in ("labels.npy", "prob.npy", "correct.npy"):
        assert (tmp_path / "old/dynamics" / name).read_bytes() == (tmp_path / "new/dynamics" / name).read_bytes()
    assert run_cli("score", "--resume", tmp_path / "none") == 2
    assert capsys.readouterr().err.splitlines() == [
        note, f"dataprune record: error: no `dataprune record` run to resume at {tmp_path / 'none'} "
              "(config.json missing); start one with `dataprune record --out " + str(tmp_path / "none") + "`"]


def test_entry_point_and_help():
    env = {**os.environ, "PYTHONPATH": SRC}
    for cmd in ([], ["record"], ["select"], ["train"], ["demo"], ["methods"]):
        out = subprocess.run([sys.executable, "-m", "dataprune", *cmd, "--help"], env=env,
                             capture_output=True, text=True, check=True).stdout
        assert "example" in out
    listed = subprocess.run([sys.executable, "-m", "dataprune", "methods"], env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "dyn-unc" in listed and "random" in listed


def test_demo_end_to_end(tiny_idx_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--score-epochs", 3,
            "--train-epochs", 1, "--window", 2, "--out", out, "--quiet"]
    assert run_cli(*args) == 0
    table = capsys.readouterr().out
    for method in ("full", "dyn-unc", "random"):
        assert f"| {method} |" in table
    assert "| dyn-unc | 225 |" in table and "| random | 225 |" in table and "| full | 300 |" in table
    for name in ("results.json", "results.md", "keep.txt", "keep.json", "datamap.png", "score/dynamics/meta.json"):
        assert (out / name).exists(), name
    assert (out / "datamap.png").read_bytes()[:4] == b"\x89PNG"
    assert run_cli(*args) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


def test_every_method_selects_from_one_scoring_run(tiny_idx_dir, tmp_path):
    run = tmp_path / "run"
    assert run_cli("record", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--epochs", 4,
                   "--batch-size", 64, "--out", run, "--quiet") == 0
    for method in dp.list_methods():  # each with its defaults (a window: min(10, K - 1) = 3)
        keep = tmp_path / f"{method}.txt"
        assert run_cli("select", run, "--method", method, "--prune-ratio", 0.3, "--class-balanced",
                       "--out", keep) == 0, method
        kept = np.loadtxt(keep, dtype=np.int64)
        labels = dp.Dynamics.open(run).labels[kept]
        assert len(kept) == 210 and np.bincount(labels, minlength=10).tolist() == [21] * 10, method
    ccs = tmp_path / "ccs.npy"
    assert run_cli("select", run, "--method", "aum", "--prune-ratio", 0.5, "--stratified", "--beta", 0.1,
                   "--out", ccs) == 0
    assert len(np.load(ccs)) == 150
    assert json.loads(ccs.with_suffix(".json").read_text())["selection"]["beta"] == 0.1
