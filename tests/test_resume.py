"""Resumable scoring runs: a run killed with SIGKILL and resumed equals an uninterrupted one.

Bitwise comparisons are fair only with the same seed, machine and thread count: every run
here uses one torch thread (``--threads 1``, or ``torch.set_num_threads(1)`` in-process).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.errors import StoreError
from dataprune.train import runs
from dataprune.train.loop import TrainConfig
from dataprune.train.rundir import RunDir

SRC = str(Path(__file__).resolve().parents[1] / "src")


def assert_same_run(a: Path, b: Path) -> None:
    """Store arrays, fingerprint, final checkpoint, final outputs and log rows are identical."""
    da, db = dp.Dynamics.open(a), dp.Dynamics.open(b)
    assert da.epochs == db.epochs and da.signals == db.signals
    assert da.fingerprint == db.fingerprint
    np.testing.assert_array_equal(da.labels, db.labels)
    for s in da.signals:
        assert da[s].tobytes() == db[s].tobytes(), s  # bitwise, NaN patterns included
    ca = torch.load(a / "checkpoint.pt", weights_only=True)
    cb = torch.load(b / "checkpoint.pt", weights_only=True)
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for name in ("final_logits.npy", "features.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    def rows(run: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run / "log.jsonl").read_text().splitlines()]
    assert rows(a) == rows(b)
    assert json.loads((b / "config.json").read_text())["finished"] is True


@pytest.mark.timeout(180)
def test_sigkill_mid_epoch_then_resume_is_identical(tiny_idx_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    args = [sys.executable, "-m", "dataprune", "record", "--dataset", "idx", "--data-dir", str(tiny_idx_dir),
            "--limit", "120", "--epochs", "4", "--batch-size", "8", "--threads", "1", "--quiet"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    ref = subprocess.Popen([*args, "--out", str(full)], env=env, stderr=subprocess.PIPE)
    victim = subprocess.Popen([*args, "--out", str(killed)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        log, state_file = killed / "log.jsonl", killed / "state.pt"

        def epochs_checkpointed() -> int:  # state.pt is written after the log row: wait for both
            if not (log.exists() and len(log.read_text().splitlines()) >= 2 and state_file.exists()):
                return 0
            return int(torch.load(state_file, weights_only=True)["epoch"])  # replaced atomically
        while epochs_checkpointed() < 2:
            assert victim.poll() is None, victim.stderr.read().decode()
            assert time.monotonic() < deadline, "the scoring run never finished epoch 2"
            time.sleep(0.02)
        time.sleep(0.05)  # inside epoch 3 (15 steps of ~10 ms)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(30) == -signal.SIGKILL
    finally:
        victim.kill()
        victim.wait()
    assert ref.wait(120) == 0, ref.stderr.read().decode()

    # The crash left a consistent, openable store and an unfinished run.
    config = json.loads((killed / "config.json").read_text())
    assert config["finished"] is False and not (killed / "checkpoint.pt").exists()
    state = torch.load(killed / "state.pt", weights_only=True)
    assert 2 <= state["epoch"] < 4
    assert state["epoch"] <= dp.Dynamics.open(killed).epochs <= state["epoch"] + 1

    resumed = subprocess.run([sys.executable, "-m", "dataprune", "record", "--resume", str(killed)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming scoring run {killed} after epoch {state['epoch']} of 4" in resumed.stderr
    assert f"resumed after epoch {state['epoch']} of 4" in resumed.stdout
    assert_same_run(full, killed)


class Crash(BaseException):
    """Stands in for a crash at a chosen point inside the scoring run."""


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.timeout(60)
def test_crash_between_store_and_state_write(tiny_idx_dir, tmp_path, monkeypatch, one_thread):
    """The store holds one epoch more than state.pt: resume discards it and still matches."""
    spec = runs.DataSpec("idx", str(tiny_idx_dir), 120)
    cfg = TrainConfig(epochs=4, batch_size=32, seed=5)
    runs.score_run(tmp_path / "full", spec, cfg=cfg, signals=("prob", "correct", "margin"))

    save_state = RunDir.save_state

    def crash_at_epoch_3(run, config, state):
        if state["epoch"] == 3:
            raise Crash()
        save_state(run, config, state)
    monkeypatch.setattr(RunDir, "save_state", crash_at_epoch_3)
    with pytest.raises(Crash):
        runs.score_run(tmp_path / "crashed", spec, cfg=cfg, signals=("prob", "correct", "margin"))
    monkeypatch.undo()
    crashed = tmp_path / "crashed"
    assert dp.Dynamics.open(crashed).epochs == 3
    assert torch.load(crashed / "state.pt", weights_only=True)["epoch"] == 2
    assert len((crashed / "log.jsonl").read_text().splitlines()) == 3

    messages = []
    result = runs.resume_score_run(crashed, log=messages.append)
    assert result.resumed_from == 2 and len(result.history) == 4
    assert "after epoch 2 of 4" in messages[0] and "discarded 1 epoch(s)" in messages[0]
    assert_same_run(tmp_path / "full", crashed)


@pytest.mark.timeout(60)
def test_crash_before_first_checkpoint_restarts(tiny_idx_dir, tmp_path, monkeypatch, one_thread):
    spec = runs.DataSpec("idx", str(tiny_idx_dir), 60)
    cfg = TrainConfig(epochs=2, batch_size=32)
    runs.score_run(tmp_path / "full", spec, model="mlp", cfg=cfg)
    monkeypatch.setattr(RunDir, "save_state", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        runs.score_run(tmp_path / "crashed", spec, model="mlp", cfg=cfg)
    monkeypatch.undo()
    assert not (tmp_path / "crashed" / "state.pt").exists()
    assert runs.resume_score_run(tmp_path / "crashed").resumed_from == 0
    assert_same_run(tmp_path / "full", tmp_path / "crashed")


def _record(rec: dp.Recorder, epochs: range, seed: int = 0) -> None:
    for e in epochs:
        g = torch.Generator().manual_seed(seed * 100 + e)
        rec.update(torch.randperm(20, generator=g)[:15], torch.randn(15, 3, generator=g),
                   torch.randint(0, 3, (15,), generator=g))
        rec.end_epoch()


def test_recorder_resume_truncates_and_continues(tmp_path):
    signals = ["prob", "correct", "el2n"]
    full = dp.Recorder(20, tmp_path / "full", 3, signals=signals, epochs=2)
    _record(full, range(5))  # capacity grows from 2 to 8
    part = dp.Recorder(20, tmp_path / "part", 3, signals=signals, epochs=2)
    _record(part, range(2))
    after_two, digests_two = part.fingerprint, dict(dp.Dynamics.open(tmp_path / "part").meta["digests"])
    _record(part, range(2, 4))  # epochs 2 and 3 will be discarded: "recorded after the checkpoint"
    rec = dp.Recorder.resume(tmp_path / "part", epochs=2, fingerprint=after_two)
    # signal digests recomputed from the kept rows; labels first seen in epochs 2-3 stay
    digests = dp.Dynamics.open(tmp_path / "part").meta["digests"]
    assert rec.recordings == 2 and {s: digests[s] for s in signals} == {s: digests_two[s] for s in signals}
    assert dp.Dynamics.open(tmp_path / "part").epochs == 2
    _record(rec, range(2, 5))
    a, b = dp.Dynamics.open(tmp_path / "full"), dp.Dynamics.open(tmp_path / "part")
    assert a.epochs == b.epochs == 5 and a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.labels, b.labels)
    for s in signals:
        assert a[s].tobytes() == b[s].tobytes(), s
    # reopening with nothing to discard keeps the store as it is
    assert dp.Recorder.resume(tmp_path / "part").fingerprint == a.fingerprint


def test_recorder_resume_refuses_mismatch(tmp_path):
    rec = dp.Recorder(20, tmp_path / "s", 3, epochs=3)
    _record(rec, range(2))
    with pytest.raises(StoreError, match=r"holds 2 epochs; cannot resume it after epoch 3"):
        dp.Recorder.resume(tmp_path / "s", epochs=3)
    with pytest.raises(StoreError, match="does not match the checkpoint"):
        dp.Recorder.resume(tmp_path / "s", epochs=1, fingerprint="0" * 32)
    with pytest.raises(StoreError, match="no dynamics store"):
        dp.Recorder.resume(tmp_path / "nothing")
