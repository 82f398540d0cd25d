"""CLI at scale: DDP scoring (--nproc 2, gloo), image folders + --file-list, keep-history none,
import-official."""
import json
import subprocess
import sys

import numpy as np
import pytest

import dataprune as dp
from conftest import subprocess_env
from dataprune.cli import main
from test_interop import make_image_folder, write_official



def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.timeout(240)
def test_ddp_score_nproc2_completes(tiny_idx_dir, tmp_path):
    run = tmp_path / "ddp"
    env = subprocess_env()
    cmd = [sys.executable, "-m", "dataprune", "record", "--nproc", "2", "--dataset", "idx",
           "--data-dir", str(tiny_idx_dir), "--limit", "101", "--epochs", "3", "--batch-size", "16",
           "--signals", "prob,correct,margin", "--out", str(run), "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("scoring run written") == 1  # rank 0 only
    dyn = dp.Dynamics.open(run)
    assert dyn.epochs == 3 and dyn.num_samples == 101
    prob = np.asarray(dyn.prob, float)
    assert not np.isnan(prob).any()  # 101 on 2 ranks: padded, every sample seen each epoch
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert len((run / "log.jsonl").read_text().splitlines()) == 3
    assert (run / "checkpoint.pt").exists()
    assert run_cli("check", run) == 0  # state.pt written by rank 0 (check refused DDP runs before)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_two_nodes_under_torchrun_give_the_store_of_nproc2(tiny_idx_dir, tmp_path):
    """Two "nodes" on localhost (torchrun's static rendezvous, one process each) train the
    same DDP run as `record --nproc 2`: the same store within float tolerance."""
    env = subprocess_env()
    score = ["-m", "dataprune", "record", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--limit", "101",
             "--epochs", "3", "--batch-size", "16", "--quiet"]
    port = str(_free_port())
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
                               "1", "--node-rank", str(r), "--master-addr", "127.0.0.1", "--master-port", port,
                               *score, "--out", str(tmp_path / "nodes")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = [p.communicate(timeout=250)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], logs
    local = subprocess.run([sys.executable, *score, "--nproc", "2", "--out", str(tmp_path / "local")], env=env,
                           capture_output=True, text=True, timeout=250)
    assert local.returncode == 0, local.stderr
    a, b = dp.Dynamics.open(tmp_path / "nodes"), dp.Dynamics.open(tmp_path / "local")
    assert a.epochs == b.epochs == 3 and a.signals == b.signals
    for signal in a.signals:
        np.testing.assert_allclose(np.asarray(a[signal], float), np.asarray(b[signal], float), atol=1e-3,
                                   equal_nan=True, err_msg=signal)
    assert json.loads((tmp_path / "nodes" / "config.json").read_text())["world_size"] == 2


@pytest.mark.timeout(300)
def test_ddp_averages_gradients_like_one_process_with_the_double_batch(tiny_idx_dir, tmp_path):
    """mlp (no augmentation, no BatchNorm), N = 96: step k of rank r uses positions
    32k + r, 32k + r + 2, ... of the epoch's order, so the two ranks' batches of 16 together
    are the single process's batch of 32, and DDP's averaged gradient is its gradient: the
    same store within float tolerance (without gradient averaging rank 1 would drift)."""
    env = subprocess_env()
    score = [sys.executable, "-m", "dataprune", "record", "--dataset", "idx", "--data-dir", str(tiny_idx_dir),
             "--limit", "96", "--epochs", "4", "--model", "mlp", "--record-view", "train",
             "--signals", "prob,el2n,grand", "--quiet"]  # train view: features through the DDP wrapper
    for name, extra in (("ddp", ["--nproc", "2", "--batch-size", "16"]), ("one", ["--batch-size", "32"])):
        done = subprocess.run([*score, *extra, "--threads", "1", "--out", str(tmp_path / name)], env=env,
                              capture_output=True, text=True, timeout=250)
        assert done.returncode == 0, done.stderr
    a, b = dp.Dynamics.open(tmp_path / "ddp"), dp.Dynamics.open(tmp_path / "one")
    for signal in ("prob", "el2n", "grand"):
        x, y = np.asarray(a[signal], float), np.asarray(b[signal], float)
        np.testing.assert_allclose(x, y, rtol=2e-3, atol=2e-3, err_msg=signal)
        assert not np.allclose(x[0], x[-1])  # it trained


def test_imagefolder_score_select_file_list(tmp_path, capsys):
    root = make_image_folder(tmp_path / "imgs", classes=("ant", "bee", "cat"), per_class=(8, 2))
    run = tmp_path / "run"
    assert run_cli("record", "--dataset", "imagefolder", "--data-dir", root, "--image-size", 8,
                   "--model", "mlp", "--epochs", 4, "--batch-size", 8, "--out", run, "--quiet") == 0
    listed = (run / "dynamics" / "file_list.txt").read_text().splitlines()
    assert listed[0] == "ant/img0.png 0" and listed[-1] == "cat/img7.png 2" and len(listed) == 24
    keep = tmp_path / "keep.txt"
    assert run_cli("select", run, "--window", 2, "--prune-ratio", 0.5, "--out", keep, "--file-list") == 0
    kept = np.loadtxt(keep, dtype=np.int64)
    lines = (tmp_path / "keep.file_list.txt").read_text().splitlines()
    assert lines == [listed[i] for i in kept] and len(lines) == 12
    assert run_cli("select", run, "--window", 2, "--prune-ratio", 0.5, "--out", tmp_path / "k2.txt",
                   "--file-list", tmp_path / "mine.txt") == 0
    assert (tmp_path / "mine.txt").read_text().splitlines() == lines


def test_file_list_needs_a_source(tiny_idx_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("record", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 40, "--epochs", 3,
                   "--model", "mlp", "--out", run, "--quiet") == 0
    assert run_cli("select", run, "--window", 2, "--prune-ratio", 0.5, "--out", tmp_path / "k.txt",
                   "--file-list") == 2
    assert "no file_list.txt" in capsys.readouterr().err
    assert not (tmp_path / "k.txt").exists()


def test_keep_history_none_cli(tiny_idx_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("record", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 60, "--epochs", 4,
                   "--model", "mlp", "--keep-history", "window", "--window", 2, "--out", run, "--quiet") == 0
    dyn = dp.Dynamics.open(run)
    assert dyn.keep_history == "window" and dyn.window == 2 and dyn.epochs == 4
    assert not (run / "dynamics" / "prob.npy").exists()
    assert run_cli("select", run, "--window", 2, "--prune-ratio", 0.5, "--out", tmp_path / "k.txt") == 0
    assert run_cli("select", run, "--window", 3, "--prune-ratio", 0.5, "--out", tmp_path / "k3.txt") == 2
    assert "keep_history='window'" in capsys.readouterr().err
    assert run_cli("select", run, "--method", "forgetting", "--prune-ratio", 0.5,
                   "--out", tmp_path / "kf.txt") == 2


def test_import_official_cli(tmp_path, capsys):
    prob = np.random.default_rng(1).random((6, 30))
    src = write_official(tmp_path / "official", prob)
    (tmp_path / "fl.txt").write_text("".join(f"/c{i % 2}/x{i}.JPEG {i % 2}\n" for i in range(30)))
    store = tmp_path / "store"
    assert run_cli("import-official", src, "--out", store, "--file-list", tmp_path / "fl.txt") == 0
    assert "imported 6 epochs x 30 samples" in capsys.readouterr().out
    assert run_cli("select", store, "--window", 3, "--prune-ratio", 0.2, "--out", tmp_path / "k.txt",
                   "--file-list") == 0
    assert len((tmp_path / "k.file_list.txt").read_text().splitlines()) == 24
    assert run_cli("import-official", tmp_path / "nowhere", "--out", tmp_path / "s2") == 2
