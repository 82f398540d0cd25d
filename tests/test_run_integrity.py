"""Runs and stores: nothing lost, nothing silently wrong.

Corrupted content is refused (fingerprint covers labels and every signal, values must lie
in their signal's range), --force never deletes foreign directories, outputs never collide
with each other or land inside a run, interrupted runs stay resumable, one process per run.
"""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.cli import main
from dataprune.errors import StoreError
from dataprune.integrity import fingerprint_of
from dataprune.train import runs
from dataprune.train.loop import TrainConfig
from conftest import cli_error, redigest, subprocess_env


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir) -> Path:
    """A finished `dataprune record` run (mlp, 3 epochs, 60 samples, prob + correct)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    runs.score_run(out, runs.DataSpec("idx", str(data_dir)), model="mlp",
                   cfg=TrainConfig(epochs=3, batch_size=32), signals=("prob", "correct"))
    return out


def copy(src: Path, tmp_path: Path, name: str | None = None) -> Path:
    dst = tmp_path / (name or src.name)
    shutil.copytree(src, dst)
    return dst


def unfinished(run: Path) -> Path:
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "finished": False}))
    return run


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out.strip(), out.err.strip()


def edit_meta(store: Path, **changes) -> None:
    meta = json.loads((store / "meta.json").read_text())
    meta.update(changes)
    (store / "meta.json").write_text(json.dumps(meta))


# ---------------------------------------------------------------------------------------------
# fingerprint covers labels and content; verified by select, check and resume

def test_fingerprint_includes_labels(tmp_path):
    prints = []
    for name, labels in (("a", [0, 1, 2, 0]), ("b", [0, 1, 2, 1])):
        rec = dp.Recorder(4, tmp_path / name, 3, labels=labels)
        rec.update(torch.arange(4), torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))
        rec.end_epoch()
        prints.append(rec.fingerprint)
    assert prints[0] != prints[1]


def _flip_byte(store: Path) -> None:
    arr = np.load(store / "prob.npy", mmap_mode="r+")
    raw = arr.view(np.uint8)
    raw[0, 1] ^= 0x01  # low mantissa bit of sample 0's high byte: still a valid probability
    arr.flush()


CORRUPTIONS = {
    "prob out of range": (lambda s: _write(s, "prob", lambda a: a.__setitem__((0, slice(0, 30)), 5.0)),
                          r"holds prob=5\.0 at sample 0 \(30 such values\); expected values in \[0\.0, 1\.0\]"),
    "correct out of range": (lambda s: _write(s, "correct", lambda a: a.__setitem__((1, 3), 7)),
                             r"correct.npy epoch 1 holds correct=7 at sample 3"),
    "flipped byte": (_flip_byte, r"prob.npy does not match the store's fingerprint"),
    "labels changed": (lambda s: _write(s, "labels", lambda a: a.__setitem__(0, (a[0] + 1) % 10)),
                       r"labels.npy does not match the store's fingerprint"),
    "signal dropped from meta": (lambda s: edit_meta(s, signals=["correct"]),
                                 r"lists signals \['correct'\] but (its digests cover|.*config.json records)"),
    "fingerprint edited": (lambda s: edit_meta(s, fingerprint="0" * 32), r"meta.json has fingerprint 0+ but"),
}


def _write(store: Path, name: str, change) -> None:
    arr = np.load(store / f"{name}.npy", mmap_mode="r+")
    change(arr)
    arr.flush()


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupted_content_refused_by_select_check_and_resume(case, finished_run, tmp_path, capsys):
    run = copy(finished_run, tmp_path)
    corrupt, message = CORRUPTIONS[case]
    corrupt(run / "dynamics")
    method = ["--method", "forgetting"] if case.startswith("correct") else ["--window", 2]
    for args in (["select", run, *method, "--prune-ratio", 0.2, "--out", tmp_path / "k.txt"],
                 ["check", run], ["check", run / "dynamics"]):
        err = cli_error(capsys, *args)
        assert re.search(message, err), err
    assert not (tmp_path / "k.txt").exists()
    with pytest.raises(dp.errors.DataPruneError, match=message):
        runs.resume_score_run(unfinished(run))


def test_check_reports_ok(finished_run, tmp_path, capsys):
    code, out, _ = cli(capsys, "check", finished_run)
    assert code == 0 and out.startswith(f"OK: run {finished_run} (finished); store ")
    assert "N=60, C=10, 3 epochs, signals prob,correct" in out and dp.Dynamics.open(finished_run).fingerprint in out
    code, out, _ = cli(capsys, "check", finished_run / "dynamics")
    assert code == 0 and out.startswith("OK: store ")
    run = unfinished(copy(finished_run, tmp_path))
    code, out, _ = cli(capsys, "check", run)
    assert code == 0 and "unfinished, 3 of 3 epochs" in out


def test_resume_refuses_store_that_lost_a_signal(finished_run, tmp_path):
    """A consistent edit (signal, digest and fingerprint removed together) is caught by
    config.json's signal list and by state.pt's fingerprint."""
    run = unfinished(copy(finished_run, tmp_path))
    meta = json.loads((run / "dynamics" / "meta.json").read_text())
    digests = {k: v for k, v in meta["digests"].items() if k != "prob"}
    edit_meta(run / "dynamics", signals=["correct"], digests=digests, fingerprint=fingerprint_of(digests))
    with pytest.raises(dp.errors.DataPruneError, match=r"lists signals \['correct'\] but .*config.json records \['prob', 'correct'\]"):
        runs.resume_score_run(run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "signals": ["correct"]}))
    with pytest.raises(dp.errors.DataPruneError, match="config.json was edited after the run started"):
        runs.resume_score_run(run)  # its settings' digest
    redigest(run)  # and digests.json rewritten too: state.pt belongs to other settings
    with pytest.raises(dp.errors.DataPruneError, match="state.pt belongs to other settings"):
        runs.resume_score_run(run)


def test_keep_history_none_store_verified(tmp_path, capsys):
    rec = dp.Recorder(6, tmp_path / "s", 3, keep_history="window", window=2)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        rec.update(torch.arange(6), torch.randn(6, 3, generator=g), torch.arange(6) % 3)
        rec.end_epoch()
    assert cli(capsys, "check", tmp_path / "s")[0] == 0
    _write(tmp_path / "s", "unc_sum_" + dp.Dynamics.open(tmp_path / "s").meta["sums"],
           lambda a: a.__setitem__(0, a[0] + 0.25))
    assert "do not match the store's fingerprint" in cli_error(capsys, "check", tmp_path / "s")


# ---------------------------------------------------------------------------------------------
# --force deletes only dataprune's own directories (or empty ones)

def test_force_keeps_foreign_directory(data_dir, tmp_path, capsys):
    v = tmp_path / "v"
    v.mkdir()
    (v / "precious.txt").write_text("x")
    err = cli_error(capsys, "record", "--dataset", "idx", "--data-dir", data_dir, "--model", "mlp",
                    "--epochs", 1, "--out", v, "--force", "--quiet")
    assert "is not a dataprune run folder" in err and "--force or not" in err and "precious.txt" in err
    assert sorted(p.name for p in v.iterdir()) == ["precious.txt"]  # no .lock left either
    with pytest.raises(dp.errors.DataPruneError, match="refusing to delete .* not a dataprune dynamics store"):
        dp.Recorder(4, v, 3, force=True)
    assert (v / "precious.txt").read_text() == "x"


def test_force_replaces_own_store_and_uses_empty_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    first = dp.Recorder(4, tmp_path / "empty", 3, force=True)
    first.update(torch.tensor([0]), torch.zeros(1, 3), torch.tensor([1]))
    first.end_epoch()
    rec = dp.Recorder(4, tmp_path / "empty", 3, force=True)  # a store: replaced
    assert rec.recordings == 0 and dp.Dynamics.open(tmp_path / "empty").epochs == 0


# ---------------------------------------------------------------------------------------------
# select's outputs never collide and never land inside a run or store

@pytest.fixture
def listed_run(finished_run, tmp_path) -> Path:
    run = copy(finished_run, tmp_path)
    labels = np.load(run / "dynamics" / "labels.npy")
    (run / "dynamics" / "file_list.txt").write_text("".join(f"/c{y}/img{i}.png {y}\n" for i, y in enumerate(labels)))
    return run


@pytest.mark.parametrize("file_list,message", [
    ("fl/keep.txt", "is the same file as --out"),
    ("fl/keep.json", "is the same file as the manifest of --out"),
])
def test_select_file_list_cannot_overwrite_keep_or_manifest(file_list, message, listed_run, tmp_path, capsys):
    (tmp_path / "fl").mkdir()
    err = cli_error(capsys, "select", listed_run, "--window", 2, "--prune-ratio", 0.2, "--out",
                    tmp_path / "fl" / "keep.txt", "--file-list", tmp_path / file_list, "--force")
    assert message in err and not list((tmp_path / "fl").iterdir())


@pytest.mark.parametrize("where", ["dynamics/prob.npy", "dynamics/keep.txt", "keep.txt", "sub/keep.txt"])
def test_select_refuses_outputs_inside_run_or_store(where, finished_run, tmp_path, capsys):
    run = copy(finished_run, tmp_path)
    before = (run / "dynamics" / "prob.npy").read_bytes()
    err = cli_error(capsys, "select", run, "--window", 2, "--prune-ratio", 0.2, "--out", run / where, "--force")
    assert "lies inside the" in err and "write keep files outside runs and stores" in err
    assert (run / "dynamics" / "prob.npy").read_bytes() == before
    assert cli(capsys, "check", run)[0] == 0


def test_keep_file_and_manifest_written_as_a_pair(tmp_path, monkeypatch):
    """A crash between the two writes never leaves a keep file that its manifest misdescribes."""
    from dataprune import keepfile
    path = tmp_path / "keep.txt"
    keepfile.write_keep(path, np.array([0, 1, 2]), {"num_samples": 10})
    writes = []
    real = keepfile.atomic_write_bytes

    def crash_on_second(p, data):
        writes.append(p)
        if len(writes) == 2:
            raise OSError("crash")
        real(p, data)
    monkeypatch.setattr(keepfile, "atomic_write_bytes", crash_on_second)
    monkeypatch.setattr(keepfile, "atomic_write_json",
                        lambda p, obj: crash_on_second(p, (json.dumps(obj) + "\n").encode()))
    with pytest.raises(OSError):
        keepfile.write_keep(path, np.array([0, 1, 3]), {"num_samples": 10}, force=True)
    with pytest.raises(dp.errors.DataPruneError, match="does not match keep.json"):
        keepfile.read_keep(path, 10)


# ---------------------------------------------------------------------------------------------
# a run killed before its first epoch finished (even before its store exists) resumes

class Crash(Exception):
    pass


def _raise(*a, **k):
    raise Crash()


@pytest.mark.parametrize("where", ["before the store", "while creating the store"])
def test_run_killed_before_store_is_resumable(where, finished_run, data_dir, tmp_path, monkeypatch, capsys):
    spec, cfg = runs.DataSpec("idx", str(data_dir)), TrainConfig(epochs=3, batch_size=32)
    if where == "before the store":
        monkeypatch.setattr(runs, "Recorder", _raise)  # config.json written, the store not yet
    else:
        from dataprune import store
        real = store.StoreWriter._new_array
        monkeypatch.setattr(store.StoreWriter, "_new_array",
                            lambda self, s, c: _raise() if s == "correct" else real(self, s, c))
    with pytest.raises(Crash):
        runs.score_run(tmp_path / "r", spec, model="mlp", cfg=cfg, signals=("prob", "correct"))
    monkeypatch.undo()
    assert (tmp_path / "r" / "config.json").exists()
    assert "--resume" in cli_error(capsys, "record", "--dataset", "idx", "--data-dir", data_dir,
                                   "--out", tmp_path / "r", "--quiet")
    torch.set_num_threads(json.loads((finished_run / "config.json").read_text())["threads"])
    result = runs.resume_score_run(tmp_path / "r")
    assert result.resumed_from == 0 and len(result.history) == 3
    a, b = dp.Dynamics.open(finished_run), dp.Dynamics.open(tmp_path / "r")
    assert a.fingerprint == b.fingerprint


# ---------------------------------------------------------------------------------------------
# --resume refuses every explicitly given setting that differs from config.json

@pytest.fixture
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("training started despite bad input")
    monkeypatch.setattr("dataprune.cli.record.score_run", refuse)
    monkeypatch.setattr("dataprune.cli.record.resume_score_run", refuse)


@pytest.mark.parametrize("flag,value,used", [
    ("--keep-history", "window", "full"), ("--window", 5, None), ("--nproc", 2, 1),
    ("--image-size", 64, None), ("--batch-size", 8, 32), ("--record-view", "train", "clean"),
    ("--signals", "prob", "['prob', 'correct']"),
])
def test_resume_refuses_any_conflicting_setting(flag, value, used, finished_run, tmp_path, capsys, no_training):
    run = unfinished(copy(finished_run, tmp_path))
    err = cli_error(capsys, "record", "--resume", run, flag, value)
    expected = f"drop {flag} {value if flag != '--signals' else ['prob']}"
    assert expected + (f" (the run has {used})" if used is not None else "") in err, err


def test_resume_accepts_settings_equal_to_the_runs(finished_run, tmp_path, capsys, monkeypatch):
    run = unfinished(copy(finished_run, tmp_path))
    called = []
    monkeypatch.setattr("dataprune.cli.record.resume_score_run", lambda *a, **k: called.append(a) or
                        runs.ScoreResult(run, 0.0, [{"epoch": 2}], 3))
    code, _, err = cli(capsys, "record", "--resume", run, "--keep-history", "full", "--nproc", 1,
                       "--batch-size", 32, "--signals", "prob,correct", "--quiet")
    assert code == 0 and called, err


# ---------------------------------------------------------------------------------------------
# one `record` process per run directory

def test_second_score_on_same_out_is_refused(finished_run, data_dir, tmp_path, capsys):
    from dataprune.fileio import exclusive_lock
    run = unfinished(copy(finished_run, tmp_path))
    fresh = tmp_path / "fresh"
    with exclusive_lock(run, "test"), exclusive_lock(fresh, "test"):  # another open file: flock conflicts
        new = ["--dataset", "idx", "--data-dir", data_dir, "--model", "mlp", "--epochs", 1]
        for args in (["--resume", run], [*new, "--out", run, "--force"], [*new, "--out", fresh]):
            err = cli_error(capsys, "record", "--quiet", *args)
            assert f"is in use by another `dataprune record` process (pid {__import__('os').getpid()})" in err, err
    assert (run / "config.json").exists() and not (fresh / "config.json").exists()
    # released: the run can be resumed now (the lock file stays, and --force keeps it too)
    assert "drop" in cli_error(capsys, "record", "--resume", run, "--epochs", 9)


# ---------------------------------------------------------------------------------------------
# the run's own log (never a stale or symlinked one); crash leftovers cleaned up

def test_fresh_run_starts_its_own_log(data_dir, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / ".config.json.abcd1234.tmp").write_text("half")  # a run killed while writing its config
    result = runs.score_run(out, runs.DataSpec("idx", str(data_dir)), model="mlp",
                            cfg=TrainConfig(epochs=2, batch_size=32), signals=("prob",))
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert not (out / ".config.json.abcd1234.tmp").exists()
    (out / "log.jsonl").write_text('{"epoch": 7}\n' * 5)
    result = runs.score_run(out, runs.DataSpec("idx", str(data_dir)), model="mlp", force=True,
                            cfg=TrainConfig(epochs=2, batch_size=32), signals=("prob",))
    assert [r["epoch"] for r in result.history] == [0, 1]  # --force: a log of its own
    stale = tmp_path / "stale"  # a log.jsonl in a folder that holds no run is someone's file
    stale.mkdir()
    (stale / "log.jsonl").write_text('{"epoch": 7}\n')
    with pytest.raises(dp.errors.DataPruneError, match="is not a dataprune run folder"):
        runs.score_run(stale, runs.DataSpec("idx", str(data_dir)), model="mlp", force=True,
                       cfg=TrainConfig(epochs=2, batch_size=32), signals=("prob",))
    assert (stale / "log.jsonl").read_text() == '{"epoch": 7}\n'


def test_symlinked_log_is_refused(finished_run, data_dir, tmp_path, capsys):
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    run = unfinished(copy(finished_run, tmp_path))
    (run / "log.jsonl").unlink()
    (run / "log.jsonl").symlink_to(outside)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "log.jsonl").symlink_to(outside)
    assert "is a symbolic link" in cli_error(capsys, "record", "--quiet", "--resume", run)
    assert "is not a dataprune run folder" in cli_error(capsys, "record", "--quiet", "--dataset", "idx", "--data-dir",
                                                        data_dir, "--model", "mlp", "--epochs", 1, "--out", fresh)
    assert outside.read_text() == "mine\n"


def test_resume_removes_crash_leftovers(finished_run, tmp_path):
    run = unfinished(copy(finished_run, tmp_path))
    leftovers = [run / ".state.pt.k2j4_x9q.tmp", run / "dynamics" / ".meta.json.0a1b2c3d.tmp"]
    for p in leftovers:
        p.write_bytes(b"partial")
    (run / ".notes.tmp").write_text("not ours")
    torch.set_num_threads(json.loads((run / "config.json").read_text())["threads"])
    runs.resume_score_run(run)  # nothing left to train: 3 of 3 epochs done, finishes the outputs
    assert not any(p.exists() for p in leftovers) and (run / ".notes.tmp").exists()
    assert len((run / "log.jsonl").read_text().splitlines()) == 3


# ---------------------------------------------------------------------------------------------
# a full disk is a one-line error before any epoch (store files are preallocated)

def test_store_files_are_allocated_not_sparse(tmp_path, monkeypatch):
    import errno
    import os
    dp.Recorder(5000, tmp_path / "s", 3, epochs=40)
    monkeypatch.setattr(os, "posix_fallocate", lambda *a: (_ for _ in ()).throw(OSError(errno.EOPNOTSUPP, "no")))
    dp.Recorder(5000, tmp_path / "fallback", 3, epochs=40)  # file systems without fallocate
    for store in ("s", "fallback"):
        for name in ("prob.npy", "correct.npy", "labels.npy"):
            st = (tmp_path / store / name).stat()
            assert st.st_blocks * 512 >= st.st_size, (store, name)


def test_disk_full_is_one_line_and_resumable(data_dir, finished_run, tmp_path, monkeypatch, capsys):
    import errno
    import os
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "r"
    err = cli_error(capsys, "record", "--dataset", "idx", "--data-dir", data_dir, "--model", "mlp", "--epochs", 3,
                    "--batch-size", 32, "--signals", "prob,correct", "--out", out, "--quiet")
    assert re.search(r"no space left on device \(needs \d+ bytes at .*/r/dynamics/\w+\.npy; \d+ bytes free\)", err), err
    with pytest.raises(dp.errors.DataPruneError, match="no space left on device"):
        dp.Recorder(4, tmp_path / "s", 3)
    monkeypatch.undo()
    dp.Recorder(4, tmp_path / "s", 3, force=True)  # the cut-short store is recognised as one
    torch.set_num_threads(json.loads((finished_run / "config.json").read_text())["threads"])
    assert runs.resume_score_run(out).resumed_from == 0
    assert dp.Dynamics.open(out).fingerprint == dp.Dynamics.open(finished_run).fingerprint


# ---------------------------------------------------------------------------------------------
# --nproc hands over to torch's launcher; stopping it stops the ranks, and a dead
# rank is one line naming it

def _launch_ddp(data_dir: Path, out: Path):
    import subprocess
    import sys
    import time
    env = subprocess_env()
    launcher = subprocess.Popen([sys.executable, "-m", "dataprune", "record", "--nproc", "2", "--dataset", "idx",
                                 "--data-dir", str(data_dir), "--model", "mlp", "--epochs", "500",
                                 "--batch-size", "16", "--signals", "prob", "--out", str(out), "--quiet"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 150
    while not ((out / "log.jsonl").exists() and (out / "log.jsonl").read_text().count("\n") >= 1):
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
        time.sleep(0.2)
    ranks = [int(p) for p in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()]
    assert len(ranks) == 2
    return launcher, ranks


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.timeout(200)
def test_stopping_the_launcher_stops_the_ranks(data_dir, tmp_path):
    import os
    import signal
    launcher, ranks = _launch_ddp(data_dir, tmp_path / "r")
    try:
        os.kill(launcher.pid, signal.SIGTERM)  # as torchrun: the elastic agent stops its ranks
        _, err = launcher.communicate(timeout=60)
        assert launcher.returncode == 130 and err.strip().splitlines()[-1] == "dataprune record: interrupted", err
        assert all(_gone(p) for p in ranks)
    finally:
        for p in ranks:
            if not _gone(p):
                os.kill(p, signal.SIGKILL)
    assert not json.loads((tmp_path / "r" / "config.json").read_text())["finished"]


@pytest.mark.timeout(200)
def test_dead_rank_is_one_line_from_the_launcher(data_dir, tmp_path):
    import os
    import signal
    launcher, ranks = _launch_ddp(data_dir, tmp_path / "r")
    os.kill(ranks[1], signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 2
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("dataprune record: error: rank 1 died (SIGKILL) (its output: "), err
    assert all(_gone(p) for p in ranks)
    assert not json.loads((tmp_path / "r" / "config.json").read_text())["finished"]


def test_culprit_is_the_rank_that_caused_the_failure():
    from types import SimpleNamespace as F
    from dataprune.train.distributed import culprit
    lost = F(exitcode=1, message={"message": "DistNetworkError: Connection closed by peer"})
    own = F(exitcode=2, message={"message": "DataPruneError: cannot decode image x.jpg"})
    stopped, killed = F(exitcode=-15, message=""), F(exitcode=-9, message="")
    assert culprit({0: lost, 1: own})[0] == 1
    assert culprit({0: stopped, 1: killed})[0] == 1
    assert culprit({0: stopped, 1: lost, 2: own})[0] == 2
    assert culprit({0: own, 1: own})[0] == 0


# ---------------------------------------------------------------------------------------------
# reference tests of the integrity helpers (obvious loops vs the fast paths)

@pytest.mark.parametrize("seed", range(6))
def test_check_range_matches_a_loop(seed):
    from dataprune.integrity import check_range
    rng = np.random.default_rng(seed)
    shape = (3, 17) if seed % 2 else (40,)
    row = rng.uniform(-0.05 * (seed % 3), 1 + 0.05 * (seed % 3), shape).astype(np.float16)
    row[rng.random(shape) < 0.2] = np.nan
    ok = all(np.isnan(v) or 0.0 <= v <= 1.0 for v in row.ravel().tolist())
    if ok:
        check_range("prob", row, "x")
    else:
        with pytest.raises(ValueError, match="x holds prob="):
            check_range("prob", row, "x")
    ints = rng.integers(-2 if seed % 3 == 0 else -1, 2, 30).astype(np.int8)
    ok = all(v in (-1, 0, 1) for v in ints.tolist())
    if ok:
        check_range("correct", ints, "y")
    else:
        with pytest.raises(ValueError, match="y holds correct=-2"):
            check_range("correct", ints, "y")


def test_digest_chain_matches_hashlib():
    import hashlib
    from dataprune.integrity import initial_digest, next_digest
    rows = np.random.default_rng(0).random((3, 5)).astype(np.float16)
    d = hashlib.blake2b(b"5:3:prob", digest_size=16).hexdigest()
    assert initial_digest(5, 3, "prob") == d
    for r in rows:
        d = hashlib.blake2b(d.encode() + r.tobytes(), digest_size=16).hexdigest()
    fast = initial_digest(5, 3, "prob")
    for r in rows:
        fast = next_digest(fast, r)
    assert fast == d


@pytest.mark.timeout(120)
def test_user_error_under_nproc_is_one_line(finished_run, data_dir, tmp_path):
    import subprocess
    import sys
    run = unfinished(copy(finished_run, tmp_path))
    env = subprocess_env()
    done = subprocess.run([sys.executable, "-m", "dataprune", "record", "--nproc", "2", "--dataset", "idx",
                           "--data-dir", str(data_dir), "--model", "mlp", "--epochs", "1", "--out", str(run),
                           "--quiet"], env=env, capture_output=True, text=True, timeout=100)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "continue it with `dataprune record --resume" in done.stderr


def test_a_forked_child_does_not_keep_a_run_lock(tmp_path):
    """A DataLoader worker forked while a run holds its folder's lock (persistent workers can
    outlive the run) must not keep the lock: the next run in the same process would be refused."""
    import os
    import signal
    from dataprune.fileio import exclusive_lock
    ready_r, ready_w = os.pipe()
    with exclusive_lock(tmp_path, "test"):
        pid = os.fork()
        if pid == 0:  # the child lives on, like a persistent worker
            os.write(ready_w, b"1")
            signal.pause()
            os._exit(0)
        os.read(ready_r, 1)  # the child runs (its fork handlers have run)
    try:
        with exclusive_lock(tmp_path, "test"):  # refused before the fix: "in use by another test (pid ...)"
            pass
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
