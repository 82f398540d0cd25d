"""Every bad input is answered with a clear error, never a silently wrong result.

Sections: (1) library values (ratio, window, names, Recorder batches, loaders, datasets),
(2) keep files, (3) corrupted dynamics stores, (4) output paths, (5) the CLI: one line on
stderr, exit code 2, and nothing trained before the check. CLI cases already covered by
tests/test_cli.py::test_errors_are_one_line are not repeated here.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.methods import dyn_unc
from dataprune.errors import DataPruneError, StoreError
from dataprune.fileio import check_writable
from dataprune.keepfile import read_keep, write_keep
from dataprune.train import runs
from dataprune.train.data import InMemoryLoader, load_dataset
from dataprune.train.loop import TrainConfig
from dataprune.train.models import build_model

from conftest import write_idx
from conftest import cli_error, redigest


# ---------------------------------------------------------------------------------------------
# fixtures: one tiny dataset, store and finished scoring run per module (cheap to copy)

@pytest.fixture(scope="module")
def clean_store(tmp_path_factory) -> Path:
    """A valid store: N=8, C=3, 4 epochs recorded, capacity 4."""
    path = tmp_path_factory.mktemp("store") / "s"
    rec = dp.Recorder(8, path, 3, epochs=4)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        rec.update(torch.arange(8), torch.randn(8, 3, generator=g), torch.arange(8) % 3)
        rec.end_epoch()
    return path


def copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------
# (1) library values

def recorder(tmp_path, **kw):
    return dp.Recorder(4, tmp_path / "s", 3, **kw)


NAN = float("nan")
LIBRARY_CASES = {
    # prune ratio outside [0, 1)
    "ratio negative": (lambda t: dp.select(np.ones(4), -0.1), r"prune_ratio=-0.1; expected .* \[0, 1\)"),
    "ratio one": (lambda t: dp.select(np.ones(4), 1.0), r"prune_ratio=1.0"),
    "ratio above one": (lambda t: dp.select(np.ones(4), 1.5), r"prune_ratio=1.5"),
    "ratio nan": (lambda t: dp.select(np.ones(4), NAN), r"prune_ratio=nan"),
    "ratio text": (lambda t: dp.select(np.ones(4), "a"), r"prune_ratio='a'; expected a number"),
    "scores empty": (lambda t: dp.select(np.array([]), 0.5), r"scores are empty"),
    "scores 2-D": (lambda t: dp.select(np.ones((2, 2)), 0.5), r"expected \(N,\)"),
    "scores NaN": (lambda t: dp.select(np.array([1.0, NAN]), 0.5), r"1 of 2 scores are NaN.*nan_policy"),
    "select nan_policy": (lambda t: dp.select(np.ones(2), 0.5, nan_policy="x"), r"nan_policy='x'"),
    # window < 2 or >= recorded epochs
    "window 1": (lambda t: dyn_unc(np.zeros((5, 3)), 1), r"window=1 with 5 recorded epochs; expected an integer in 2\.\.4"),
    "window = K": (lambda t: dyn_unc(np.zeros((5, 3)), 5), r"window=5 with 5"),
    "window > K": (lambda t: dyn_unc(np.zeros((5, 3)), 9), r"window=9 with 5"),
    "window float": (lambda t: dyn_unc(np.zeros((5, 3)), 2.5), r"window=2.5; expected an integer"),
    "prob 1-D": (lambda t: dyn_unc(np.zeros(5), 2), r"expected \(K, N\)"),
    # unknown names list the valid ones
    "unknown method": (lambda t: dp.score("nope", np.zeros((3, 2))), r"unknown method 'nope'; expected one of .*dyn-unc.*random"),
    "unknown model": (lambda t: build_model("vit-huge", 10), r"unknown model 'vit-huge'; expected one of .*mlp.*small-cnn"),
    "unknown dataset": (lambda t: load_dataset("imagenet"), r"unknown dataset 'imagenet'; expected one of .*fashion-mnist"),
    "unknown method param": (lambda t: dp.score("random", type("D", (), {"num_samples": 3})(), window=3),
                             r"method 'random' has no parameter 'window'; it takes seed$"),
    # Recorder: indices, targets, logits, batch sizes
    "index too large": (lambda t: recorder(t).update([0, 4], torch.zeros(2, 3), [0, 1]),
                        r"sample indices out of range \(got 0\.\.4\); expected 0\.\.3"),
    "index negative": (lambda t: recorder(t).update([-1, 2], torch.zeros(2, 3), [0, 1]), r"indices out of range"),
    "index float": (lambda t: recorder(t).update(torch.tensor([0.0, 1.0]), torch.zeros(2, 3), [0, 1]),
                    r"indices have dtype torch.float32; expected an integer dtype"),
    "index bool": (lambda t: recorder(t).update(torch.tensor([True, False]), torch.zeros(2, 3), [0, 1]),
                   r"indices have dtype torch.bool"),
    "target too large": (lambda t: recorder(t).update([0, 1], torch.zeros(2, 3), [0, 3]),
                         r"targets out of range \(got 0\.\.3\); expected 0\.\.2"),
    "target negative": (lambda t: recorder(t).update([0, 1], torch.zeros(2, 3), [-1, 0]), r"targets out of range"),
    "target float": (lambda t: recorder(t).update([0, 1], torch.zeros(2, 3), torch.tensor([0.0, 1.0])),
                     r"targets have dtype torch.float32"),
    "logits NaN": (lambda t: recorder(t).update([0, 1], torch.tensor([[0, NAN, 0], [0, 0, 0]]), [0, 1]),
                   r"logits contain NaN or inf; .*nan_policy='omit'"),
    "logits inf": (lambda t: recorder(t).update([0, 1], torch.tensor([[0, float("inf"), 0], [0, 0, 0]]), [0, 1]),
                   r"logits contain NaN or inf"),
    "logits vs indices batch": (lambda t: recorder(t).update([0, 1], torch.zeros(3, 3), [0, 1]),
                                r"batch sizes differ: indices \(2,\), logits \(3, 3\), targets \(2,\)"),
    "targets vs indices batch": (lambda t: recorder(t).update([0, 1], torch.zeros(2, 3), [0, 1, 2]),
                                 r"batch sizes differ"),
    "logits classes": (lambda t: recorder(t).update([0, 1], torch.zeros(2, 4), [0, 1]), r"expected \(B, 3\)"),
    "logits 1-D": (lambda t: recorder(t).update([0, 1], torch.zeros(2), [0, 1]), r"expected \(B, 3\)"),
    "recorder empty dataset": (lambda t: dp.Recorder(0, t / "s", 3), r"num_samples=0; expected at least 1"),
    "recorder one class": (lambda t: dp.Recorder(4, t / "s", 1), r"num_classes=1; expected at least 2"),
    "recorder labels range": (lambda t: dp.Recorder(2, t / "s", 3, labels=[0, 3]), r"labels lie in \[0, 3\]; expected 0\.\.2"),
    "recorder labels shape": (lambda t: dp.Recorder(2, t / "s", 3, labels=[0, 1, 2]), r"labels have shape \(3,\); expected \(2,\)"),
    "recorder nan_policy": (lambda t: recorder(t, nan_policy="zero"), r"nan_policy='zero'; expected 'raise' or 'omit'"),
    "recorder signal": (lambda t: recorder(t, signals=["prob", "loss"]), r"signals=\['prob', 'loss'\]; expected"),
    "recorder view": (lambda t: recorder(t, view="eval"), r"view='eval'"),
    # loaders and datasets
    "loader index range": (lambda t: InMemoryLoader(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4),
                                                    mean=0, std=1, indices=np.array([0, 4])),
                           r"indices span \[0, 4\]; expected sample indices in \[0, 4\)"),
    "loader index dup": (lambda t: InMemoryLoader(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4),
                                                  mean=0, std=1, indices=np.array([1, 1])), r"1 duplicates"),
    "loader index float": (lambda t: InMemoryLoader(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4),
                                                    mean=0, std=1, indices=np.array([1.0])), r"expected 1-D integers"),
    "config epochs": (lambda t: TrainConfig(epochs=0), r"epochs=0; expected at least 1"),
    "config batch": (lambda t: TrainConfig(batch_size=0), r"batch_size=0"),
    "config lr": (lambda t: TrainConfig(lr=NAN), r"lr=nan"),
}


@pytest.mark.parametrize("case", LIBRARY_CASES)
def test_library_rejects(case, tmp_path):
    fn, message = LIBRARY_CASES[case]
    with pytest.raises(DataPruneError, match=message):
        fn(tmp_path)


def test_nan_logits_omitted_when_asked(tmp_path):
    rec = recorder(tmp_path, nan_policy="omit")
    rec.update([0, 1], torch.tensor([[0, NAN, 0], [5.0, 0, 0]]), [0, 0])
    rec.end_epoch()
    prob = dp.Dynamics.open(tmp_path / "s").prob
    assert np.isnan(prob[0, 0]) and prob[0, 1] > 0.9 and np.isnan(prob[0, 2:]).all()


@pytest.mark.parametrize("case,message", [
    ("limit too large", r"limit 61 is out of range; expected 1 <= limit <= 60"),
    ("limit zero", r"limit 0 is out of range"),
    ("empty split", r"holds no samples"),
    ("missing dir", r"does not exist"),
    ("missing labels", r"no train labels IDX file"),
    ("truncated images", r"truncated or corrupt"),
    ("count mismatch", r"holds 60 images but .* holds 59 labels"),
])
def test_dataset_rejects(case, message, data_dir, tmp_path):
    d = copy(data_dir, tmp_path)
    limit = {"limit too large": 61, "limit zero": 0}.get(case)
    if case == "empty split":
        write_idx(d / "train-images-idx3-ubyte", np.zeros((0, 28, 28)))
        write_idx(d / "train-labels-idx1-ubyte", np.zeros(0))
    elif case == "missing dir":
        d = tmp_path / "nowhere"
    elif case == "missing labels":
        (d / "train-labels-idx1-ubyte").unlink()
    elif case == "truncated images":
        raw = (d / "train-images-idx3-ubyte").read_bytes()
        (d / "train-images-idx3-ubyte").write_bytes(raw[:-100])
    elif case == "count mismatch":
        write_idx(d / "train-labels-idx1-ubyte", np.zeros(59))
    with pytest.raises((DataPruneError, FileNotFoundError), match=message):
        load_dataset("idx", d, limit)


# ---------------------------------------------------------------------------------------------
# (2) keep files

def keep_with_manifest(tmp_path, indices=(0, 2, 5), **manifest):
    path = tmp_path / "keep.txt"
    write_keep(path, np.array(indices), {"num_samples": 10, "dataset": "idx", **manifest})
    return path


KEEP_CASES = {
    "non-integer line": ("0\n1.5\n3\n", r"line 2 is '1.5'; expected one integer sample index per line"),
    "text line": ("0\nabc\n", r"line 2 is 'abc'"),
    "duplicates": ("1\n2\n2\n", r"repeats 1 sample indices"),
    "negative": ("-1\n2\n", r"holds indices -1\.\.2; expected 0\.\.9"),
    "out of range": ("0\n10\n", r"holds indices 0\.\.10; expected 0\.\.9"),
    "empty": ("\n\n", r"is empty"),
    "beyond int64": ("1\n99999999999999999999999\n", r"beyond int64"),
}


@pytest.mark.parametrize("case", KEEP_CASES)
def test_keep_txt_rejects(case, tmp_path):
    text, message = KEEP_CASES[case]
    path = tmp_path / "keep.txt"
    path.write_text(text)
    with pytest.raises(DataPruneError, match=message):
        read_keep(path, 10)


@pytest.mark.parametrize("array,message", [
    (np.array([0.0, 1.0]), r"holds float64 \(2,\); expected 1-D integers"),
    (np.array([[0, 1]]), r"holds int64 \(1, 2\)"),
    (np.array([1, 1]), r"repeats 1"),
    (np.array([3, 12]), r"holds indices 3\.\.12"),
    (np.array([{"a": 1}], dtype=object), r"not a readable \.npy"),
])
def test_keep_npy_rejects(array, message, tmp_path):
    path = tmp_path / "keep.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DataPruneError, match=message):
        read_keep(path, 10)


def test_keep_checked_against_manifest(tmp_path):
    path = keep_with_manifest(tmp_path)
    np.testing.assert_array_equal(read_keep(path, 10, dataset="idx"), [0, 2, 5])
    with pytest.raises(DataPruneError, match=r"selected from N=10 samples \(see keep.json\) but this dataset has N=11"):
        read_keep(path, 11)
    with pytest.raises(DataPruneError, match=r"selected on dataset 'idx' .* trains on 'fashion-mnist'"):
        read_keep(path, 10, dataset="fashion-mnist")
    path.write_text("0\n2\n")  # truncated
    with pytest.raises(DataPruneError, match=r"holds 2 indices but keep.json says 3 were kept"):
        read_keep(path, 10)
    (tmp_path / "keep.json").write_text("{not json")
    with pytest.raises(DataPruneError, match=r"keep.json is not valid JSON"):
        read_keep(path, 10)


def test_keep_files_missing_or_misnamed(tmp_path):
    with pytest.raises(DataPruneError, match=r"does not exist"):
        read_keep(tmp_path / "none.txt", 10)
    with pytest.raises(DataPruneError, match=r"ends in '.csv'; expected .txt or .npy"):
        read_keep(tmp_path / "keep.csv", 10)
    keep_with_manifest(tmp_path)
    with pytest.raises(DataPruneError, match=r"already exists; pass force=True to overwrite it"):
        keep_with_manifest(tmp_path)


# ---------------------------------------------------------------------------------------------
# (3) corrupted dynamics stores: detected on open, never scored

def _meta(store, **changes):
    meta = json.loads((store / "meta.json").read_text())
    meta.update(changes)
    (store / "meta.json").write_text(json.dumps(meta))


def _truncate(file, keep_bytes):
    raw = file.read_bytes()
    file.write_bytes(raw[:keep_bytes if keep_bytes >= 0 else len(raw) + keep_bytes])


STORE_CASES = {
    "short npy": (lambda s: _truncate(s / "prob.npy", -7), r"prob.npy is truncated or corrupted"),
    "header only": (lambda s: _truncate(s / "prob.npy", 40), r"prob.npy is truncated or corrupted"),
    "empty npy": (lambda s: _truncate(s / "correct.npy", 0), r"correct.npy is truncated or corrupted"),
    "short labels": (lambda s: _truncate(s / "labels.npy", -8), r"labels.npy is truncated or corrupted"),
    "epochs > capacity": (lambda s: _meta(s, epochs=5), r"prob.npy holds 4 epochs but meta.json says 5"),
    "wrong dtype": (lambda s: np.save(s / "prob.npy", np.zeros((4, 8), np.float32)),
                    r"prob.npy has dtype float32, expected float16"),
    "wrong N": (lambda s: np.save(s / "prob.npy", np.zeros((4, 9), np.float16)),
                r"prob.npy has shape \(4, 9\), expected \(K, 8\)"),
    "1-D signal": (lambda s: np.save(s / "prob.npy", np.zeros(8, np.float16)), r"expected \(K, 8\)"),
    "labels dtype": (lambda s: np.save(s / "labels.npy", np.zeros(8, np.int32)), r"labels.npy has dtype int32"),
    "labels range": (lambda s: np.save(s / "labels.npy", np.arange(8, dtype=np.int64)),
                     r"holds labels 0\.\.7; expected 0\.\.2 \(or -1"),
    "missing signal file": (lambda s: (s / "correct.npy").unlink(), r"lacks correct.npy listed in meta.json"),
    "meta not json": (lambda s: (s / "meta.json").write_text("{"), r"meta.json is not valid JSON"),
    "meta not a store": (lambda s: (s / "meta.json").write_text("[]"), r"is not a dataprune dynamics store"),
    "meta version": (lambda s: _meta(s, version=2), r"store format version 2, this dataprune reads version 1"),
    "meta key missing": (lambda s: _drop(s, "epochs"), r"lacks the key 'epochs'"),
    "meta epochs text": (lambda s: _meta(s, epochs="4"), r"epochs='4'; expected an integer >= 0"),
    "meta epochs negative": (lambda s: _meta(s, epochs=-1), r"epochs=-1; expected an integer >= 0"),
    "meta N zero": (lambda s: _meta(s, num_samples=0), r"num_samples=0; expected an integer >= 1"),
    "meta signals": (lambda s: _meta(s, signals="prob"), r"signals='prob'; expected a list of distinct names"),
    "meta signals dup": (lambda s: _meta(s, signals=["prob", "prob"]), r"expected a list of distinct names"),
}


def _drop(store, key):
    meta = json.loads((store / "meta.json").read_text())
    del meta[key]
    (store / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case", STORE_CASES)
def test_corrupted_store_detected_on_open(case, clean_store, tmp_path):
    store = copy(clean_store, tmp_path)
    dp.Dynamics.open(store)  # the copy is fine before corruption
    corrupt, message = STORE_CASES[case]
    corrupt(store)
    with pytest.raises(StoreError, match=message):
        dp.Dynamics.open(store)


def test_store_mismatch_with_dataset_n(finished_run, data_dir, tmp_path, monkeypatch):
    run = copy(finished_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "finished": False, "num_samples": 61}))
    redigest(run)  # as if digests.json were rewritten too: the data checks still catch it
    with pytest.raises(DataPruneError, match=r"now has N=60 training samples, but the run .* N=61"):
        runs.resume_score_run(run)
    (run / "config.json").write_text(json.dumps({**config, "finished": False, "train_labels_digest": "x"}))
    redigest(run)
    with pytest.raises(DataPruneError, match=r"training labels .* differ .* was the dataset replaced"):
        runs.resume_score_run(run)
    (run / "config.json").write_text(json.dumps({**config, "finished": False}))
    redigest(run)
    shutil.rmtree(run / "dynamics")
    dp.Recorder(59, run / "dynamics", 10)
    with pytest.raises(DataPruneError, match=r"holds N=59 samples but the dataset has N=60"):
        runs.resume_score_run(run)


def test_corrupted_state_refused(finished_run, tmp_path):
    run = copy(finished_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "finished": False}))
    _truncate(run / "state.pt", 1000)
    with pytest.raises(DataPruneError, match=r"state.pt does not match its sha256"):
        runs.resume_score_run(run)
    redigest(run)  # digests.json rewritten too: loading still refuses the file
    with pytest.raises(DataPruneError, match=r"state.pt is truncated or corrupted"):
        runs.resume_score_run(run)
    torch.save({"model": {"w": torch.zeros(1)}, "format": "dataprune-run-state", "version": 2}, run / "state.pt")
    redigest(run)
    with pytest.raises(DataPruneError, match=r"state.pt lacks the entry 'epoch'"):
        runs.resume_score_run(run)
    state = torch.load(finished_run / "state.pt", weights_only=True)
    torch.save({**state, "model": {"w": torch.zeros(1)}}, run / "state.pt")
    redigest(run)
    with pytest.raises(DataPruneError, match=r"state.pt does not fit this run's model"):
        runs.resume_score_run(run)


def test_checkpoints_load_weights_only(finished_run):
    for name in ("checkpoint.pt", "state.pt"):
        obj = torch.load(finished_run / name, weights_only=True)
        assert "model" in obj


# ---------------------------------------------------------------------------------------------
# (4) output paths

@pytest.mark.parametrize("where,message", [
    ("/proc/dataprune-nope/keep.txt", r"cannot write /proc/dataprune-nope/keep.txt: "),
    ("{file}/keep.txt", r"cannot write .*file.txt/keep.txt: (File exists|Not a directory)"),
    ("{dir}", r"is a directory"),
])
def test_unwritable_output(where, message, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    path = where.format(file=tmp_path / "file.txt", dir=tmp_path)
    with pytest.raises(DataPruneError, match=message):
        check_writable(path)


# ---------------------------------------------------------------------------------------------
# (5) the CLI: one line, exit code 2, checked before any training

@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a command starts training."""
    def refuse(*a, **k):
        raise AssertionError("training started despite bad input")
    monkeypatch.setattr("dataprune.cli.train.train_run", refuse)
    monkeypatch.setattr("dataprune.cli.record.score_run", refuse)
    monkeypatch.setattr("dataprune.cli.record.resume_score_run", refuse)


@pytest.mark.parametrize("text,manifest,message", [
    ("0\n1.5\n", None, "line 2 is '1.5'"),
    ("0\n3\n3\n", None, "repeats 1 sample indices"),
    ("0\n60\n", None, r"holds indices 0..60; expected 0..59"),
    ("", None, "is empty"),
    ("0\n1\n", {"num_samples": 50, "kept": 2}, "selected from N=50 samples"),
    ("0\n1\n", {"num_samples": 60, "kept": 3}, "holds 2 indices but keep.json says 3"),
    ("0\n1\n", {"num_samples": 60, "dataset": "mnist"}, "selected on dataset 'mnist'"),
])
def test_cli_train_refuses_bad_subset(text, manifest, message, data_dir, tmp_path, capsys, no_training):
    keep = tmp_path / "keep.txt"
    keep.write_text(text)
    if manifest is not None:
        (tmp_path / "keep.json").write_text(json.dumps(manifest))
    # --limit given: without it, train takes N from the manifest (tests/test_cli_commands.py)
    err = cli_error(capsys, "train", "--dataset", "idx", "--data-dir", data_dir, "--limit", 60, "--subset", keep)
    assert message in err


@pytest.mark.parametrize("args,message", [
    (["train", "--metrics-out", "/proc/dataprune-nope/m.json"], "cannot write /proc/dataprune-nope/m.json"),
    (["train", "--metrics-out", "{tmp}/file.txt/m.json"], "cannot write"),
    (["train", "--subset", "{tmp}/missing.txt"], "missing.txt does not exist"),
    (["train", "--subset", "{tmp}"], "ends in"),
    (["train", "--limit", "0"], "limit 0 is out of range"),
    (["train", "--limit", "-3"], "limit -3 is out of range"),
    (["record", "--out", "/proc/dataprune-nope/run", "--epochs", "1"], "/proc/dataprune-nope"),
    (["record", "--out", "{tmp}/file.txt/run", "--epochs", "1"], "file.txt"),
    (["record", "--out", "{tmp}/r", "--threads", "0"], "--threads 0; expected at least 1"),
])
def test_cli_rejects_paths_and_values(args, message, data_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.setattr("dataprune.cli.train.train_run",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    filled = [a.format(tmp=tmp_path) for a in args]
    err = cli_error(capsys, *filled[:1], "--dataset", "idx", "--data-dir", data_dir, "--quiet", *filled[1:])
    assert message in err


@pytest.mark.parametrize("args,message", [
    (["--prune-ratio", "-0.1"], "prune_ratio=-0.1"),
    (["--prune-ratio", "nan"], "prune_ratio=nan"),
    (["--window", "1", "--prune-ratio", "0.2"], "window=1 with 4 recorded epochs"),
    (["--window", "4", "--prune-ratio", "0.2"], "window=4 with 4 recorded epochs"),
    (["--prune-ratio", "0.2", "--out", "/proc/dataprune-nope/k.txt"], "cannot write"),
    (["--prune-ratio", "0.2", "--out", "{tmp}/k.csv"], "expected .txt or .npy"),
])
def test_cli_select_rejects(args, message, clean_store, tmp_path, capsys):
    filled = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in filled:
        filled += ["--out", str(tmp_path / "k.txt")]
    err = cli_error(capsys, "select", clean_store, *filled)
    assert message in err
    assert not (tmp_path / "k.txt").exists()


def test_cli_select_refuses_corrupted_store(clean_store, tmp_path, capsys):
    store = copy(clean_store, tmp_path)
    _truncate(store / "prob.npy", -7)
    err = cli_error(capsys, "select", store, "--window", 2, "--prune-ratio", 0.2, "--out", tmp_path / "k.txt")
    assert "prob.npy is truncated or corrupted" in err and not (tmp_path / "k.txt").exists()


def test_cli_resume_refusals(finished_run, tmp_path, capsys, no_training):
    run = copy(finished_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "finished": False}))
    err = cli_error(capsys, "record", "--resume", run, "--epochs", 30, "--model", "small-cnn", "--seed", 0)
    assert "settings from" in err and "drop --model small-cnn (the run has mlp), --epochs 30 (the run has 2)," in err
    assert "--seed" not in err  # the same value as the run's is fine
    assert "cannot be combined with --resume" in cli_error(capsys, "record", "--resume", run, "--force")


def test_cli_out_on_unfinished_run_points_to_resume(finished_run, tmp_path, capsys):
    run = copy(finished_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "finished": False}))
    err = cli_error(capsys, "record", "--out", run, "--epochs", 2)
    assert "already holds an unfinished `dataprune record` run; continue it with `dataprune record --resume" in err


def test_cli_resume_nothing_to_resume(finished_run, tmp_path, capsys):
    err = cli_error(capsys, "record", "--resume", finished_run)
    assert "already finished all 2 epochs; nothing to resume" in err
    assert "no `dataprune record` run to resume" in cli_error(capsys, "record", "--resume", tmp_path / "nothing")
