"""One run lifecycle (train/rundir.py, train/training.py) and one LR schedule (train/schedule.py):
the schedule against a slow reference, `train --budget`, the same training whichever command
runs it, and what resume, checkpoints and --force may do: a user's folder is never written,
a missing or corrupt state deletes no epoch, conflicting settings are refused, temps are cleaned."""
from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from conftest import cli_error, killed_at_epoch
from dataprune.cli import main
from dataprune.errors import DataPruneError
from dataprune.train import training
from dataprune.train.loop import TrainConfig
from dataprune.train.one_run import PrunePlan, resume_run, start_run
from dataprune.train.rundir import RunConfig, rng_states, set_rng_states
from dataprune.train.runs import DataSpec, train_run
from dataprune.train.schedule import ProgressSchedule, lr_factor

N = 300  # tiny_idx_dir's training samples
CFG = TrainConfig(epochs=3, batch_size=64, seed=1)  # 5 steps an epoch, 15 in the full run


def slow_factor(s: int, total: int, warmup: float) -> float:
    """Step s of ``total``, warm-up over ``warmup`` steps, written out the obvious way."""
    if s < warmup:
        return (s + 1) / (warmup + 1)
    return 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))


# --- the schedule ------------------------------------------------------------------------------
def test_lr_factor_hand_case():
    # 4 steps, warm-up 2 steps: 1/3, 2/3, then cosine over 2 steps: cos(0) -> 1, cos(pi/2) -> 1/2
    assert [lr_factor(s, 1, 4, 2) for s in range(4)] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.5], abs=1e-15)


@pytest.mark.parametrize("seed", range(6))
def test_budget_schedule_matches_slow_loop(seed):
    rng = np.random.default_rng(seed)
    epochs, spe = int(rng.integers(1, 8)), int(rng.integers(1, 30))
    warmup, budget = float(rng.choice([0.0, 0.5, 1.0, 2.0])), float(rng.uniform(0.05, 1.0))
    steps = dp.budget_steps(budget, epochs, spe)
    assert steps == max(1, round(budget * epochs * spe))
    w_steps = min(warmup, epochs) * steps / epochs  # the warm-up's share of the run, in its steps
    want = [slow_factor(s, steps, w_steps) for s in range(steps)]
    # the run's own schedule (progress in epochs), stepped as the lifecycle does
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = ProgressSchedule.for_run(opt, epochs, warmup, steps_per_epoch=spe, steps=steps)
    got = []
    for e in range(math.ceil(steps / spe)):
        sched.start_epoch(e, spe)
        for _ in range(min(spe, steps - e * spe)):
            got.append(opt.param_groups[0]["lr"])
            sched.step()
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    # the Python API for one's own loop: torch's LambdaLR over the same steps
    opt2 = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    lam = dp.budget_schedule(opt2, steps, w_steps)
    api = []
    for _ in range(steps):
        api.append(opt2.param_groups[0]["lr"])
        opt2.step()
        lam.step()
    assert api == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), float("inf"), "0.5", True])
def test_budget_steps_bad_values(bad):
    with pytest.raises(DataPruneError, match=r"budget=.*; expected a fraction 0 < B <= 1"):
        dp.budget_steps(bad, 10, 5)


# --- one training path -------------------------------------------------------------------------
def test_train_and_one_run_full_and_budget_one_are_the_same_training(tiny_idx_dir, tmp_path, capsys):
    """`dataprune train --seed S --epochs E`, the one-run lifecycle's full run and
    `train --budget 1` train the same model: identical accuracy and loss, bit for bit."""
    spec = DataSpec("idx", str(tiny_idx_dir))
    assert main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "3",
                 "--batch-size", "64", "--seed", "1", "--metrics-out", str(tmp_path / "m.json"), "--quiet"]) == 0
    cli = json.loads((tmp_path / "m.json").read_text())
    full = start_run(tmp_path / "full", spec, model="mlp", cfg=CFG, plan=PrunePlan())
    budget = start_run(tmp_path / "b1", spec, model="mlp", cfg=CFG, budget=1.0)
    for m in (full, budget):
        assert m["test_accuracy"] == cli["test_accuracy"]
        assert m["final_train_loss"] == cli["final_train_loss"]
        assert m["optimizer_steps"] == cli["optimizer_steps"] == 15 and m["sample_passes"] == 3 * N


def test_budget_run_metrics_steps_and_lrs(tiny_idx_dir, tmp_path, monkeypatch):
    lrs = []
    real_step = torch.optim.SGD.step

    def spy(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)
    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    m = start_run(tmp_path / "b", DataSpec("idx", str(tiny_idx_dir)), model="mlp", cfg=CFG, budget=0.6)
    steps = round(0.6 * 15)  # 9: one full epoch of 5 steps and a partial one of 4
    assert m["optimizer_steps"] == len(lrs) == steps and m["budget"] == 0.6
    assert m["samples_per_epoch"] == [N, 4 * 64] and m["sample_passes"] == N + 256
    assert abs(m["full_equivalent"] - 0.6) <= 64 / (3 * N)  # B within one batch
    assert m["epochs"] == 3 and m["num_samples"] == N
    want = [0.1 * slow_factor(s, steps, 1.0 * steps / 3) for s in range(steps)]  # warm-up: 1 of 3 epochs
    assert lrs == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("kill_at", [1, 2])  # before the partial epoch / a full run's epoch
def test_budget_resume_after_kill_equals_uninterrupted(tiny_idx_dir, tmp_path, monkeypatch, kill_at):
    spec = DataSpec("idx", str(tiny_idx_dir))
    budget = 0.6 if kill_at == 1 else 0.9  # 9 steps (2 epochs) / 14 steps (3 epochs, last partial)
    ref = start_run(tmp_path / "ref", spec, model="mlp", cfg=CFG, budget=budget)
    with killed_at_epoch(monkeypatch, kill_at), pytest.raises(KeyboardInterrupt):
        start_run(tmp_path / "killed", spec, model="mlp", cfg=CFG, budget=budget)
    np.random.seed(123)  # resume restores every RNG state, whatever happened in between
    random.seed(9)
    got = resume_run(tmp_path / "killed")
    for k in ("test_accuracy", "final_train_loss", "optimizer_steps", "sample_passes", "samples_per_epoch"):
        assert got[k] == ref[k], k
    rows = [json.loads(line) for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(len(ref["samples_per_epoch"])))


@pytest.mark.parametrize("args, message", [
    (["--budget", "0"], "--budget 0.0; expected a fraction 0 < B <= 1"),
    (["--budget", "1.5"], "--budget 1.5; expected"),
    (["--budget", "nan"], "--budget nan; expected"),
    (["--budget", "inf"], "--budget inf; expected"),
    (["--budget", "0.5", "--prune-at", "1"], "--budget excludes --prune-at/--dynamic"),
    (["--budget", "0.5", "--dynamic", "infobatch"], "--budget excludes --prune-at/--dynamic"),
    (["--budget", "0.5", "--subset", "k.txt"], "--subset excludes --prune-at/--dynamic/--budget"),
    (["--budget", "0.5"], "need a run folder; pass --out DIR or --metrics-out JSON"),
])
def test_cli_budget_bad_values(args, message, tiny_idx_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained despite bad input"))
    err = cli_error(capsys, "train", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--model", "mlp",
                    "--epochs", 2, *args)
    assert message in err and len(err.splitlines()) == 1, err


def test_cli_budget_writes_metrics_and_resumes_finished(tiny_idx_dir, tmp_path, capsys):
    argv = ["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "2",
            "--batch-size", "64", "--budget", "0.5", "--metrics-out", str(tmp_path / "m.json"), "--quiet"]
    assert main(argv) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["optimizer_steps"] == 5 and m["full_equivalent"] == pytest.approx(0.5, abs=64 / 600)
    assert (tmp_path / "m.run" / "config.json").exists()
    assert json.loads((tmp_path / "m.run" / "config.json").read_text())["budget"] == 0.5


# --- the typed, versioned config ---------------------------------------------------------------
def _config(**changes) -> dict:
    base = RunConfig(command="train", dataset="idx", data_dir="/d", limit=None, image_size=28, num_samples=10,
                     num_classes=2, train_labels_digest="x", model="mlp", train=TrainConfig(epochs=2),
                     threads=1, plan=PrunePlan()).to_json()
    base.update(changes)
    return base


@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
    ({"version": 1}, r"version=1; this dataprune reads version 2"),
    ({"budget": 0.5, "plan": {**PrunePlan(prune_at=1, method="el2n", prune_ratio=0.3).to_dict()}},
     r"sets budget=0.5 and a pruning plan; expected one of them"),
    ({"budget": 2.0}, r"budget=2.0; expected a fraction"),
    ({"record_view": "clean"}, r"sets record_view, which a `dataprune train` run does not have"),
    ({"command": "score", "plan": None, "record_view": "clean", "signals": ["prob"], "keep_history": "none"},
     r"keep_history='none' and window=None; expected a window"),
    ({"threads": 0}, r"threads=0; expected at least 1"),
    ({"train": {"epochs": 2, "warmup_epochs": "1"}}, r"warmup_epochs='1'; expected int or float"),
])
def test_config_refuses_unknown_and_contradictory_fields(changes, message, tmp_path):
    obj = {k: v for k, v in _config(**changes).items() if v is not None or k not in changes}
    with pytest.raises(DataPruneError, match=message):
        RunConfig.from_json(tmp_path / "config.json", obj)


def test_config_round_trip(tmp_path):
    obj = _config()
    assert RunConfig.from_json(tmp_path / "config.json", json.loads(json.dumps(obj))).to_json() == obj


def test_rng_states_round_trip():
    state = rng_states()
    want = torch.rand(3), np.random.rand(3), random.random()
    set_rng_states(torch.load(_saved(state), weights_only=True))  # survives a weights_only load
    got = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]


def _saved(obj):
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


# --- run folders: the user's files, checkpoints, resume ------------------------------------------
def _score(capsys, data_dir, out, *extra):
    return main(["record", "--dataset", "idx", "--data-dir", str(data_dir), "--model", "mlp", "--epochs", "2",
                 "--batch-size", "32", "--signals", "prob,correct", "--out", str(out), "--quiet", *map(str, extra)])


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("command", ["record", "train"])
def test_users_folder_is_never_written(command, force, data_dir, tmp_path, capsys):
    u = tmp_path / "u"
    u.mkdir()
    (u / "checkpoint.pt").write_text("mine")
    args = (["record", "--epochs", 2] if command == "record" else
            ["train", "--epochs", 2, "--prune-at", 1, "--method", "el2n"])
    err = cli_error(capsys, *args, "--dataset", "idx", "--data-dir", data_dir, "--model", "mlp", "--out", u,
                    "--quiet", *(["--force"] if force else []))
    assert "is not a dataprune run folder (it holds checkpoint.pt)" in err
    assert [p.name for p in u.iterdir()] == ["checkpoint.pt"] and (u / "checkpoint.pt").read_text() == "mine"


def test_empty_folder_is_fine(data_dir, tmp_path, capsys):
    (tmp_path / "e").mkdir()
    assert _score(capsys, data_dir, tmp_path / "e") == 0


def test_force_keeps_users_file_inside_a_run(data_dir, tmp_path, capsys):
    run = tmp_path / "r"
    assert _score(capsys, data_dir, run) == 0
    (run / "notes.txt").write_text("mine")
    assert _score(capsys, data_dir, run, "--force") == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert dp.Dynamics.open(run).epochs == 2


def test_missing_state_never_deletes_epochs(data_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    from dataprune.train.rundir import RunDir
    real = RunDir.save_state

    def crash_at_2(self, config, state):
        if state["epoch"] == 2:
            raise KeyboardInterrupt
        real(self, config, state)
    monkeypatch.setattr(RunDir, "save_state", crash_at_2)
    assert _score(capsys, data_dir, run, "--epochs", 3) == 130  # interrupted
    capsys.readouterr()
    monkeypatch.undo()
    (run / "state.pt").unlink()
    before = dp.Dynamics.open(run).epochs
    assert before == 2
    err = cli_error(capsys, "record", "--resume", run, "--quiet")
    assert "state.pt is missing" in err and "deletes nothing" in err and len(err.splitlines()) == 1
    assert dp.Dynamics.open(run).epochs == before  # nothing deleted
    assert main(["check", str(run)]) == 0
    assert f"holds {before} of 3 epochs, but state.pt is missing" in capsys.readouterr().out


def test_flipped_byte_in_state_or_checkpoint_is_caught(data_dir, tmp_path, capsys):
    run = tmp_path / "r"
    assert _score(capsys, data_dir, run) == 0
    assert main(["check", str(run)]) == 0
    capsys.readouterr()
    for name in ("state.pt", "checkpoint.pt"):
        copy = tmp_path / name
        shutil.copytree(run, copy)
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(data)
        assert f"{name} does not match its sha256" in cli_error(capsys, "check", copy)
    config = json.loads((tmp_path / "state.pt" / "config.json").read_text())
    (tmp_path / "state.pt" / "config.json").write_text(json.dumps({**config, "finished": False}))
    assert "state.pt does not match its sha256" in cli_error(capsys, "record", "--resume", tmp_path / "state.pt")


def test_train_resume_refuses_conflicts_and_restores_threads(tiny_idx_dir, tmp_path, capsys, monkeypatch):
    spec_args = ["--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp"]
    run = tmp_path / "r"
    with killed_at_epoch(monkeypatch, 1):
        assert main(["train", *spec_args, "--epochs", "3", "--batch-size", "64", "--prune-at", "1", "--method",
                     "el2n", "--out", str(run), "--threads", "1", "--quiet"]) == 130  # interrupted
    capsys.readouterr()
    assert json.loads((run / "config.json").read_text())["threads"] == 1
    for flag, value in [("--epochs", 9), ("--prune-ratio", 0.5), ("--method", "forgetting"), ("--seed", 4),
                        ("--lr", 0.2), ("--limit", 100), ("--budget", 0.5)]:
        err = cli_error(capsys, "train", "--resume", run, flag, value, "--quiet")
        assert f"drop {flag} {value}" in err and len(err.splitlines()) == 1, err
    torch.set_num_threads(2)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0  # equal values are fine
    assert torch.get_num_threads() == 1  # the run's own count


def test_metrics_out_inside_a_run_or_store_is_refused(data_dir, tmp_path, capsys):
    run = tmp_path / "r"
    assert _score(capsys, data_dir, run) == 0
    meta = (run / "dynamics" / "meta.json").read_bytes()
    for target in (run / "dynamics" / "meta.json", run / "x.json"):
        err = cli_error(capsys, "train", "--dataset", "idx", "--data-dir", data_dir, "--model", "mlp",
                        "--epochs", 1, "--metrics-out", target, "--force", "--quiet")
        assert "lies inside the dataprune run or store" in err
    assert (run / "dynamics" / "meta.json").read_bytes() == meta and main(["check", str(run)]) == 0


def test_keep_history_window_checked_up_front(data_dir, tmp_path, capsys):
    err = cli_error(capsys, "record", "--dataset", "idx", "--data-dir", data_dir, "--keep-history", "window",
                    "--window", 20, "--epochs", 2, "--out", tmp_path / "r")
    assert "--window 20 with --keep-history window and --epochs 2" in err and not (tmp_path / "r").exists()


def test_edited_config_epochs_refused_by_resume_and_check(data_dir, tmp_path, capsys):
    run = tmp_path / "r"
    assert _score(capsys, data_dir, run) == 0
    config = json.loads((run / "config.json").read_text())
    config["finished"] = False
    config["train"]["epochs"] = 5
    (run / "config.json").write_text(json.dumps(config))
    assert "config.json was edited after the run started" in cli_error(capsys, "record", "--resume", run)
    assert "config.json was edited after the run started" in cli_error(capsys, "check", run)


def test_train_temp_files_cleaned_on_resume(tiny_idx_dir, tmp_path, monkeypatch):
    spec = DataSpec("idx", str(tiny_idx_dir))
    plan = PrunePlan(prune_at=1, method="el2n", prune_ratio=0.3)
    with killed_at_epoch(monkeypatch, 2), pytest.raises(KeyboardInterrupt):
        start_run(tmp_path / "r", spec, model="mlp", cfg=CFG, plan=plan)
    leftovers = [tmp_path / "r" / ".keep.txt.a1b2c3d4.tmp", tmp_path / "r" / ".metrics.json.a1b2c3d4.tmp"]
    for p in leftovers:
        p.write_text("half")
    resume_run(tmp_path / "r")
    assert not any(p.exists() for p in leftovers)


def test_refused_force_leaves_no_lock(data_dir, tmp_path, capsys):
    u = tmp_path / "u"
    u.mkdir()
    (u / "mine.txt").write_text("x")
    cli_error(capsys, "record", "--dataset", "idx", "--data-dir", data_dir, "--out", u, "--force", "--quiet")
    assert sorted(p.name for p in u.iterdir()) == ["mine.txt"]



def test_check_verifies_train_run_folders(tiny_idx_dir, tmp_path, capsys):
    """`check` on a `train` run folder (it used to refuse them): digests, store and keep file."""
    start_run(tmp_path / "r", DataSpec("idx", str(tiny_idx_dir)), model="mlp", cfg=CFG,
              plan=PrunePlan(prune_at=1, method="el2n", prune_ratio=0.3))
    assert main(["check", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "OK: train run" in out and "finished, 3 epochs" in out and "keep file of 210 of 300" in out
    data = bytearray((tmp_path / "r" / "state.pt").read_bytes())
    data[100] ^= 0x01
    (tmp_path / "r" / "state.pt").write_bytes(data)
    assert "state.pt does not match its sha256" in cli_error(capsys, "check", tmp_path / "r")


def test_every_record_option_is_a_run_setting_or_declared_runtime_only():
    """`record --resume` refuses a given run setting that differs from the run's; an option added
    later must be classified, or it would be silently dropped on --resume."""
    import argparse
    from dataprune.cli import record
    parser = argparse.ArgumentParser()
    record.register(parser.add_subparsers())
    p = parser._subparsers._group_actions[0].choices["record"]  # the test may read argparse's internals
    runtime = {"help", "out", "resume", "threads", "force", "quiet", "verbose", "workers", "device", "compile"}
    dests = {a.dest for a in p._actions}
    assert dests - runtime == set(record.RUN_SETTINGS)
    assert all(p.get_default(d) is None for d in record.RUN_SETTINGS)
