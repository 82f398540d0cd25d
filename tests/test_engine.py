"""Training on torch's own engine: one epoch order for every loader, mixed precision and
devices, features through a forward hook, refused settings (lr, seed, precision, device),
a diverged training stopped in one line, a corrupt image under workers in one line, and the
progress bar on a terminal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.cli import main
from dataprune.train.data import InMemoryLoader
from dataprune.train.device import autocast, prepare_model, resolve_device, unwrap
from dataprune.train.loop import TrainConfig, forward
from dataprune.train.models import build_model
from dataprune.train.order import epoch_order, epoch_seed

SRC = str(Path(__file__).resolve().parents[1] / "src")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------
# one epoch order


def slow_epoch_order(indices, seed, epoch, shuffle, rank, world, drop_last):
    """The obvious version: permute, then pad by cycling (or cut), then deal out round-robin."""
    order = list(indices)
    if shuffle:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        perm = torch.randperm(len(order), generator=g).tolist()
        order = [order[p] for p in perm]
    if world > 1:
        if drop_last:
            order = order[: len(order) // world * world]
        else:
            i = 0
            while len(order) % world:
                order.append(order[i])
                i += 1
    return [order[p] for p in range(rank, len(order), world)]


@pytest.mark.parametrize("seed", range(8))
def test_epoch_order_matches_a_loop(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 40))
    indices = np.sort(rng.choice(100, m, replace=False))
    world = int(rng.integers(1, 6))
    for rank in range(world):
        for shuffle in (False, True):
            for drop_last in (False, True):
                got = epoch_order(indices, seed=seed, epoch=3, shuffle=shuffle, rank=rank, world_size=world,
                                  drop_last=drop_last).tolist()
                assert got == slow_epoch_order(indices.tolist(), seed, 3, shuffle, rank, world, drop_last)
    # hand case (docstring): [0..4], no shuffle, W=2 -> [0, 2, 4] and [1, 3, 0]
    assert epoch_order(np.arange(5), seed=0, epoch=0, shuffle=False, rank=1, world_size=2).tolist() == [1, 3, 0]


def test_one_order_for_every_loader_and_sampler(tmp_path):
    """InMemoryLoader (single and sharded), the image-folder loader and PruneAt visit the
    samples of an epoch in the same order; a single process is world size 1 of the shards."""
    from test_interop import make_image_folder
    n, seed, epoch = 12, 5, 2
    x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    single = InMemoryLoader(x, torch.zeros(n), mean=0.0, std=1.0, batch_size=5, seed=seed)
    single.set_epoch(epoch)
    order = torch.cat([idx for _, _, idx in single]).tolist()
    assert sorted(order) == list(range(n)) and order != list(range(n))
    shards = []
    for rank in range(2):
        ld = InMemoryLoader(x, torch.zeros(n), mean=0.0, std=1.0, batch_size=5, seed=seed, rank=rank, world_size=2)
        ld.set_epoch(epoch)
        shards.append(torch.cat([idx for _, _, idx in ld]).tolist())
        assert len(ld) == 2
    assert [i for pair in zip(*shards) for i in pair] == order  # rank r takes every 2nd from r
    sampler = dp.PruneAt(n, prune_at=5, seed=seed)
    sampler.set_epoch(epoch)
    assert list(sampler) == order
    root = make_image_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=(4, 1))
    from dataprune.train.data import load_dataset
    folder = load_dataset("imagefolder", root, image_size=8)
    loader = folder.loader(batch_size=5, shuffle=True, augment=False, seed=seed)
    loader.set_epoch(epoch)
    assert torch.cat([idx for _, _, idx in loader]).tolist() == order


# ---------------------------------------------------------------------------------------------
# devices, precision, DDP/compile wrappers


def test_features_come_from_the_head_hook_of_the_wrapped_model():
    torch.manual_seed(0)
    net = build_model("small-cnn", 3, 1, 28)
    x = torch.randn(4, 1, 28, 28)
    logits, h = forward(net, x, with_features=True)
    torch.testing.assert_close(h, net.features(x))
    torch.testing.assert_close(logits, net.head(net.features(x)))
    assert forward(net, x, with_features=False)[1] is None
    assert unwrap(prepare_model(net, torch.device("cpu"))) is net
    compiled = prepare_model(net, torch.device("cpu"), compile=True)  # compiles lazily: not run here
    assert compiled is not net and unwrap(compiled) is net


def test_bf16_autocast_forward_on_cpu():
    net = build_model("mlp", 3, 1, 8)
    with autocast(torch.device("cpu"), "bf16"):
        logits, _ = forward(net, torch.randn(2, 1, 8, 8), False)
    assert logits.dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert forward(net, torch.randn(2, 1, 8, 8), False)[0].dtype == torch.float32


def test_score_in_bf16_writes_a_valid_store(tiny_idx_dir, tmp_path, capsys):
    run = tmp_path / "bf16"
    code, _, err = cli(capsys, "record", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 120,
                       "--epochs", 3, "--batch-size", 32, "--precision", "bf16", "--device", "cpu",
                       "--out", run, "--quiet")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["precision"] == "bf16" and config["finished"]
    dyn = dp.Dynamics.open(run)
    prob = np.asarray(dyn.prob, float)
    assert dyn.epochs == 3 and np.isfinite(prob).all() and ((prob >= 0) & (prob <= 1)).all()
    assert np.isfinite(dp.score("dyn-unc", dyn, window=2)).all()
    assert cli(capsys, "check", run)[0] == 0


@pytest.mark.parametrize("args,expected", [
    (("--precision", "fp16", "--device", "cpu"), "--precision fp16 needs a CUDA device"),
    (("--device", "tpu"), "--device 'tpu'; expected cpu, cuda or cuda:N"),
    (("--lr", "inf"), "lr=inf; expected a finite, positive learning rate"),
    (("--lr", "nan"), "lr=nan; expected a finite, positive learning rate"),
    (("--lr", "0"), "lr=0.0; expected a finite, positive learning rate"),
    (("--lr", "-1"), "lr=-1.0; expected a finite, positive learning rate"),
    (("--seed", "-1"), "seed -1 is out of range; expected an integer in [0, 2**63 - 1]"),
    (("--seed", str(2**70)), f"seed {2**70} is out of range"),
])
@pytest.mark.parametrize("command", ["record", "train"])
def test_bad_training_settings_refused_before_any_file(command, args, expected, tiny_idx_dir, tmp_path, capsys):
    out = tmp_path / "run"
    where = ("--out", out) if command == "record" else ("--metrics-out", out / "m.json")
    code, _, err = cli(capsys, command, "--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 50,
                       "--epochs", 2, *args, *where)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_device_cuda_refused_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(dp.DataPruneError, match="CUDA is not available here"):
        resolve_device("cuda")
    assert resolve_device(None) == torch.device("cpu")


def test_precision_is_a_run_setting_with_default_fp32():
    assert TrainConfig().precision == "fp32" and TrainConfig().to_dict()["precision"] == "fp32"
    with pytest.raises(dp.DataPruneError, match="precision='fp8'"):
        TrainConfig(precision="fp8")


# ---------------------------------------------------------------------------------------------
# a diverged training stops with one line


@pytest.mark.parametrize("command", [
    ("train",), ("train", "--dynamic", "infobatch", "--out", "{tmp}/ib"), ("record", "--out", "{tmp}/s"),
])
def test_diverged_training_is_an_error_not_a_result(command, tiny_idx_dir, tmp_path, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, out, err = cli(capsys, *args, "--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 200,
                         "--epochs", 2, "--batch-size", 20, "--lr", "1e9", "--model", "small-cnn")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "accuracy" not in out
    if args[0] == "train":
        assert "training diverged: the loss became nan in epoch 1 by step" in err
        assert "lower the learning rate" in err
    else:  # the recorder sees the non-finite logits of the clean view first
        assert "diverged" in err


def test_loss_check_names_epoch_and_step():
    from dataprune.train.loop import check_finite
    check_finite(torch.tensor(3.0), 0, 5, TrainConfig())
    with pytest.raises(dp.DataPruneError, match=r"loss became inf in epoch 3 by step 50; lower the learning rate \(--lr 0.1\)"):
        check_finite(torch.tensor(float("inf")), 2, 50, TrainConfig())


# ---------------------------------------------------------------------------------------------
# a corrupt image under --workers 1 is one line naming the file


def test_corrupt_image_under_workers_is_one_line(tmp_path, capsys):
    from test_interop import make_image_folder
    root = make_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=(4, 1))
    bad = root / "train" / "b" / "img2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    code, _, err = cli(capsys, "record", "--dataset", "imagefolder", "--data-dir", root, "--image-size", 8,
                       "--model", "mlp", "--epochs", 2, "--batch-size", 4, "--workers", 1, "--out",
                       tmp_path / "run", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"cannot decode image {bad}" in err and "Traceback" not in err and len(err) < 400, err


# ---------------------------------------------------------------------------------------------
# a progress bar on a terminal (also one reporting 0 columns), none in logs


def _score_cmd(data_dir: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dataprune", "record", "--dataset", "idx", "--data-dir", str(data_dir),
            "--limit", "100", "--epochs", "1", "--batch-size", "10", "--model", "mlp", "--threads", "1",
            "--out", str(out)]


@pytest.mark.timeout(120)
def test_progress_bar_on_a_zero_column_pseudo_terminal(tiny_idx_dir, tmp_path):
    import pty
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("COLUMNS", None)
    pid, fd = pty.fork()  # a new pseudo-terminal: no window size set, 0 columns
    if pid == 0:
        os.execve(sys.executable, _score_cmd(tiny_idx_dir, tmp_path / "tty"), env)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert "epoch 1/1:" in text and "/10 [" in text, text[-2000:]


@pytest.mark.timeout(120)
def test_no_progress_bar_in_logs(tiny_idx_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(_score_cmd(tiny_idx_dir, tmp_path / "log"), env=env, capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr
    # the epoch's log line, but no bar (tqdm draws "epoch 1/1: ...| n/10 [" with carriage returns)
    assert "\r" not in done.stderr and "/10 [" not in done.stderr and "score epoch 1/1:" in done.stderr


# ---------------------------------------------------------------------------------------------
# CUDA only (skipped without a GPU; benchmarks/gpu_check.sh runs them)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_score_on_cuda(precision, tiny_idx_dir, tmp_path, capsys):
    run = tmp_path / precision
    code, _, err = cli(capsys, "record", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--limit", 120,
                       "--epochs", 3, "--batch-size", 32, "--device", "cuda", "--precision", precision,
                       "--out", run, "--quiet")
    assert code == 0, err
    dyn = dp.Dynamics.open(run)
    assert np.isfinite(np.asarray(dyn.prob, float)).all()
    assert json.loads((run / "config.json").read_text())["device"] == "cuda"


@pytest.mark.cuda
def test_channels_last_and_compile_on_cuda():
    net = build_model("small-cnn", 3, 1, 28)
    model = prepare_model(net, torch.device("cuda"), compile=True)
    assert next(net.parameters()).is_cuda and unwrap(model) is net
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with autocast(torch.device("cuda"), "bf16"):
        logits, h = forward(model, torch.randn(4, 1, 28, 28, device="cuda"), True)
    assert logits.shape == (4, 3) and h.shape[0] == 4
