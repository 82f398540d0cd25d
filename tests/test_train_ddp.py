"""`dataprune train --nproc 2` (gloo on CPU): DDP under torch's launcher, rank 0 writes and
prints; two ranks of batch b train what one process of batch 2b trains."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import dataprune as dp
from conftest import subprocess_env
from dataprune.cli import main



def _train(data, *args) -> subprocess.CompletedProcess:
    """mlp (no augmentation, no BatchNorm) on N = 96: step k of rank r of `--nproc 2` uses
    positions 32k + r, 32k + r + 2, ... of the epoch's order (epoch_order's DistributedSampler
    split), so the two ranks' batches of 16 together are one process's batch of 32 and DDP's
    averaged gradient is its gradient."""
    cmd = [sys.executable, "-m", "dataprune", "train", "--dataset", "idx", "--data-dir", str(data),
           "--limit", "96", "--epochs", "3", "--model", "mlp", "--lr", "0.01", "--threads", "1", "--quiet",
           *map(str, args)]
    return subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=250)


SAME = ("test_accuracy", "train_samples", "num_samples", "sample_passes", "full_equivalent", "optimizer_steps",
        "samples_per_epoch", "epochs")


def _compare(a: dict, b: dict) -> None:
    for key in SAME:
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-4, abs=1e-5)


@pytest.mark.timeout(300)
def test_train_nproc2_equals_one_process_with_the_double_batch(tiny_idx_dir, tmp_path):
    m = {}
    for name, extra in (("ddp", ["--nproc", 2, "--batch-size", 16]), ("one", ["--batch-size", 32])):
        done = _train(tiny_idx_dir, *extra, "--metrics-out", tmp_path / f"{name}.json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("accuracy") == 1, done.stdout  # rank 0 only
        m[name] = json.loads((tmp_path / f"{name}.json").read_text())
    _compare(m["ddp"], m["one"])
    assert m["ddp"]["samples_per_epoch"] == [96, 96, 96]  # both ranks' samples counted
    assert m["ddp"]["final_train_loss"] < 2.2  # it trained (ln 10 = 2.30 at chance)
    assert 0.2 < m["ddp"]["test_accuracy"] < 1  # not at an end of the scale, where any training ties


@pytest.mark.timeout(300)
def test_train_budget_nproc2_equals_one_process_with_the_double_batch(tiny_idx_dir, tmp_path):
    m = {}
    for name, extra in (("ddp", ["--nproc", 2, "--batch-size", 16]), ("one", ["--batch-size", 32])):
        done = _train(tiny_idx_dir, *extra, "--budget", 0.5, "--out", tmp_path / name)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("accuracy") == 1, done.stdout
        m[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    _compare(m["ddp"], m["one"])
    weights = [torch.load(tmp_path / name / "state.pt", weights_only=True)["model"] for name in ("ddp", "one")]
    for key, value in weights[0].items():
        np.testing.assert_allclose(value.numpy(), weights[1][key].numpy(), rtol=1e-4, atol=1e-5, err_msg=key)
    assert m["ddp"]["optimizer_steps"] == round(0.5 * 3 * 3) == 4  # 3 steps an epoch: a partial 2nd epoch
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2
    rows = [json.loads(r) for r in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and [r["samples"] for r in rows] == [96, 32]  # written once, by rank 0
    np.testing.assert_allclose(rows[-1]["loss"], m["ddp"]["final_train_loss"])
    assert main(["check", str(tmp_path / "ddp")]) == 0  # rank 0's state.pt, log and metrics agree
    # a multi-process run does not resume: one line, nothing changed
    before = (tmp_path / "ddp" / "metrics.json").read_bytes()
    (tmp_path / "ddp" / "config.json").write_text(
        json.dumps({**json.loads((tmp_path / "ddp" / "config.json").read_text()), "finished": False}))
    assert main(["train", "--resume", str(tmp_path / "ddp")]) == 2
    assert (tmp_path / "ddp" / "metrics.json").read_bytes() == before


@pytest.mark.timeout(300)
def test_prune_at_nproc2_equals_one_process_with_the_double_batch(tiny_idx_dir, tmp_path):
    """The ranks' recordings are merged into one store, rank 0 scores it and sends the keep to
    every rank: the same keep file and training as one process (72 kept: 36 a rank, so the
    two ranks' last batches of 4 are still one process's last batch of 8)."""
    m = {}
    for name, extra in (("ddp", ["--nproc", 2, "--batch-size", 16]), ("one", ["--batch-size", 32])):
        done = _train(tiny_idx_dir, *extra, "--prune-at", 1, "--method", "el2n", "--prune-ratio", 0.25,
                      "--out", tmp_path / name)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("accuracy") == 1, done.stdout
        m[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    _compare(m["ddp"], m["one"])
    assert m["ddp"]["samples_per_epoch"] == [96, 72, 72]
    keeps = [np.loadtxt(tmp_path / name / "keep.txt", dtype=np.int64) for name in ("ddp", "one")]
    np.testing.assert_array_equal(*keeps)
    stores = [dp.Dynamics.open(tmp_path / name / "dynamics") for name in ("ddp", "one")]
    np.testing.assert_allclose(np.asarray(stores[0].el2n, float), np.asarray(stores[1].el2n, float),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.timeout(200)
@pytest.mark.parametrize("extra, words", [
    (["--dynamic", "infobatch", "--out", "X"], "--dynamic infobatch trains in one process only"),
    (["--nproc", 0], "--nproc 0; expected at least 1"),
    (["--budget", 2], "--budget 2.0; expected a fraction"),
])
def test_bad_settings_under_nproc_give_one_line(tiny_idx_dir, tmp_path, extra, words, capsys):
    extra = [str(tmp_path / "run") if e == "X" else str(e) for e in extra]
    nproc = [] if "--nproc" in extra else ["--nproc", "2"]
    assert main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--limit", "96", "--epochs", "3",
                 "--metrics-out", str(tmp_path / "m.json"), *nproc, *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "run").exists()


@pytest.mark.timeout(200)
def test_a_rank_refusal_under_nproc_is_one_line(tiny_idx_dir, tmp_path):
    """A keep file that does not fit the data is refused by every rank: one line, from the launcher."""
    (tmp_path / "keep.txt").write_text("0\n1\n500\n")
    done = _train(tiny_idx_dir, "--nproc", 2, "--batch-size", 16, "--subset", tmp_path / "keep.txt",
                  "--metrics-out", tmp_path / "m.json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "500" in done.stderr, done.stderr
    assert not (tmp_path / "m.json").exists()


@pytest.mark.timeout(200)
def test_an_existing_run_folder_is_refused_by_rank0_for_every_rank(tiny_idx_dir, tmp_path):
    """Rank 0 claims the run folder; its refusal reaches rank 1 (no hang) and is printed once."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mine.txt").write_text("not a run")
    done = _train(tiny_idx_dir, "--nproc", 2, "--batch-size", 16, "--budget", 0.5, "--out", tmp_path / "run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and str(tmp_path / "run") in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["mine.txt"]


def test_resume_refuses_nproc_and_torchrun_ranks(tiny_idx_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    base = ["--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--limit", "96", "--epochs", "2", "--model", "mlp",
            "--threads", "1", "--quiet"]
    assert main(["train", *base, "--budget", "0.5", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert "--nproc 2 (the run has 1)" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "continues a run in one process, not in 2 ranks of torchrun" in err, err
