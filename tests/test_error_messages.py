"""Error messages and wording: one-line errors instead of tracebacks (manifests, keep files,
resume's config and state, Recorder labels and logits), messages without impossible ranges,
help for every option, and small CLI wording."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.methods import dyn_unc
from dataprune.cli.terms import cli_terms
from dataprune.errors import DataPruneError
from dataprune.record import ALL_SIGNALS, EXTRA_SIGNALS


def _store(path, epochs: int, n: int = 6, c: int = 3):
    """A store of every signal with ``epochs`` recorded epochs (N=n, C=c)."""
    rec = dp.Recorder(n, path, c, signals=ALL_SIGNALS + EXTRA_SIGNALS)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        rec.update(torch.arange(n), torch.randn(n, c, generator=g), torch.arange(n) % c,
                   features=torch.randn(n, 4, generator=g))
        rec.end_epoch()
    return dp.Dynamics.open(path)


def _impossible_ranges(message: str) -> list[str]:
    """Ranges in ``message`` that no value satisfies: 'a <= x < b' with b <= a, 'in a..b' with b < a."""
    bad = []
    for lo, op, hi in re.findall(r"(-?\d+) <= \w+ (<=?) (-?\d+)", message):
        if int(hi) < int(lo) or (op == "<" and int(hi) == int(lo)):
            bad.append(f"{lo} <= x {op} {hi}")
    bad += [f"{lo}..{hi}" for lo, hi in re.findall(r"in (-?\d+)\.\.(-?\d+)", message) if int(hi) < int(lo)]
    return bad


# --- no impossible ranges -------------------------------------------------------------------------

def test_impossible_range_detector():
    assert _impossible_ranges("expected 2 <= window < 2") == ["2 <= x < 2"]
    assert _impossible_ranges("expected 3 <= epochs <= 2 (0 = all)") == ["3 <= x <= 2"]
    assert _impossible_ranges("expected an integer in 2..1") == ["2..1"]
    assert _impossible_ranges("expected 2 <= window < 5, in 0..9") == []


@pytest.mark.parametrize("epochs", [1, 2])
def test_short_store_messages_say_what_is_needed(epochs, tmp_path):
    """Every method on a 1- or 2-epoch store: either it scores or its message is possible."""
    dyn = _store(tmp_path / "s", epochs)
    for method in dp.list_methods():
        for params in ({}, {"window": 2}, {"epochs": 2}):
            try:
                dp.score(method, dyn, **params)
            except DataPruneError as e:
                assert not _impossible_ranges(str(e)), f"{method} {params}: {e}"


@pytest.mark.parametrize("call,message", [
    (lambda d: dp.score("dyn-unc", d, window=2), r"dyn-unc needs at least 3 recorded epochs \(the store has 2\); got window=2"),
    (lambda d: dp.score("tdds", d), r"tdds needs at least 3 recorded epochs \(the store has 2\); got epochs=0"),
    (lambda d: dp.score("cartography", d, epochs=3), r"epochs=3 with 2 recorded epochs; expected an integer in 2\.\.2"),
])
def test_needs_at_least_k_epochs(call, message, tmp_path):
    with pytest.raises(DataPruneError, match=message):
        call(_store(tmp_path / "s", 2))


def test_keep_history_none_window_one(tmp_path):
    with pytest.raises(DataPruneError, match=r"window=1; expected an integer >= 2"):
        dp.Recorder(4, tmp_path / "s", 3, keep_history="window", window=1)


# --- errors, not tracebacks -----------------------------------------------------------------------

import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from dataprune.cli import main  # noqa: E402
from dataprune.keepfile import read_keep  # noqa: E402
from dataprune.train import runs, training  # noqa: E402
from conftest import cli_error, redigest  # noqa: E402


def unfinished(finished_run: Path, tmp_path: Path, **config_changes) -> Path:
    """A copy of the finished run marked unfinished, with ``config_changes`` applied
    (a value of None deletes the key)."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = json.loads((run / "config.json").read_text())
    config.update(finished=False, **config_changes)
    config = {k: v for k, v in config.items() if k not in config_changes or v is not None}
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_cli_random_negative_seed(tmp_path, capsys):
    _store(tmp_path / "s", 3)
    err = cli_error(capsys, "select", tmp_path / "s", "--method", "random", "--seed", -1,
                    "--prune-ratio", 0.5, "--out", tmp_path / "k.txt")
    assert "seed=-1; expected an integer >= 0" in err


@pytest.mark.parametrize("manifest,message", [
    ({"num_samples": "abc"}, r"keep.json has num_samples='abc'; expected a non-negative integer"),
    ({"kept": 2.5}, r"has kept=2.5; expected a non-negative integer"),
    ({"num_samples": True}, r"has num_samples=True"),
    ({"dataset": 3}, r"has dataset=3; expected a name"),
])
def test_manifest_values_checked(manifest, message, tmp_path):
    (tmp_path / "keep.txt").write_text("0\n1\n")
    (tmp_path / "keep.json").write_text(json.dumps(manifest))
    with pytest.raises(DataPruneError, match=message):
        read_keep(tmp_path / "keep.txt", 10)


@pytest.mark.parametrize("line", ["1_0", "\uff11", "+3", "٣", "0x1", " 1 2"])
def test_keep_lines_ascii_digits_only(line, tmp_path):
    (tmp_path / "keep.txt").write_text(f"0\n{line}\n", encoding="utf-8")
    with pytest.raises(DataPruneError, match=r"line 2 is .*expected one integer sample index per line \(ASCII"):
        read_keep(tmp_path / "keep.txt", 10)


def test_keep_negative_still_named(tmp_path):
    (tmp_path / "keep.txt").write_text("-1\n3\n")
    with pytest.raises(DataPruneError, match=r"holds indices -1\.\.3"):
        read_keep(tmp_path / "keep.txt", 10)


@pytest.mark.parametrize("changes,message", [
    ({"dataset": None}, r"config.json lacks the entry 'dataset'"),
    ({"num_samples": "60"}, r"config.json has num_samples='60'; expected int"),
    ({"model": 3}, r"has model=3; expected str"),
    ({"train": {"epochs": 2, "foo": 1}}, r"unknown training setting\(s\) \['foo'\] under 'train'"),
    ({"train": {"epochs": "2"}}, r"has epochs='2'; expected int"),
    ({"train": {"epochs": 2, "lr": True}}, r"has lr=True; expected int or float"),
    ({"train": [2]}, r"has train=\[2\]; expected dict"),
])
def test_resume_checks_config(changes, message, finished_run, tmp_path):
    run = unfinished(finished_run, tmp_path, **changes)
    with pytest.raises(DataPruneError, match=message):
        runs.resume_score_run(run)


def test_resume_refuses_unknown_top_level_key(finished_run, tmp_path):
    """The typed config refuses what it does not know (it used to be ignored)."""
    run = unfinished(finished_run, tmp_path, written_by_a_newer_version=1)
    with pytest.raises(DataPruneError, match=r"unknown field\(s\) \['written_by_a_newer_version'\]"):
        runs.resume_score_run(run)


def _edit_state(run: Path, **changes) -> None:
    state = torch.load(run / "state.pt", weights_only=True)
    state.update(changes)
    for k in [k for k, v in changes.items() if v is None]:  # None deletes the entry
        del state[k]
    torch.save(state, run / "state.pt")
    redigest(run)  # as if digests.json were rewritten too: the entry checks still catch it


@pytest.mark.parametrize("changes,message", [
    ({"epoch": None}, r"state.pt lacks the entry 'epoch'"),
    ({"store_fingerprint": None}, r"lacks the entry 'store_fingerprint'"),
    ({"epoch": "x"}, r"state.pt has epoch='x'; expected int"),
    ({"store_epochs": torch.zeros(2)}, r"has store_epochs=tensor\(\[0\., 0\.\]\); expected int"),
    ({"optimizer": [1]}, r"has optimizer=\[1\]; expected dict"),
    ({"rng": {"torch": torch.zeros(3)}}, r"state.pt does not fit this run's model and optimizer"),
    ({"model": {"0.weight": torch.zeros(2, 2)}}, r"does not fit this run's model"),
])
def test_resume_checks_state(changes, message, finished_run, tmp_path):
    run = unfinished(finished_run, tmp_path)
    _edit_state(run, **changes)
    with pytest.raises(DataPruneError, match=message):
        runs.resume_score_run(run)


def test_cli_resume_bad_state_one_line(finished_run, tmp_path, capsys):
    run = unfinished(finished_run, tmp_path)
    _edit_state(run, epoch=None)
    assert "state.pt lacks the entry 'epoch'" in cli_error(capsys, "record", "--resume", run, "--quiet")


def test_resume_refuses_unreadable_log_before_training(finished_run, tmp_path, monkeypatch):
    run = unfinished(finished_run, tmp_path)
    (run / "log.jsonl").write_text('{"epoch": 0}\nnot json\n')
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained despite the bad log"))
    with pytest.raises(DataPruneError, match=r"log.jsonl line 2 is 'not json'; expected one JSON object"):
        runs.resume_score_run(run)
    (run / "log.jsonl").write_bytes(b'{"epoch": 0}\n\xff\xfe[1]\n')
    with pytest.raises(DataPruneError, match=r"log.jsonl line 2 is"):
        runs.resume_score_run(run)


def test_recorder_resume_refuses_keep_history_none(tmp_path):
    rec = dp.Recorder(4, tmp_path / "s", 3, keep_history="window", window=2)
    rec.update(torch.arange(4), torch.zeros(4, 3), torch.arange(4) % 3)
    rec.end_epoch()
    with pytest.raises(DataPruneError, match=r"keep_history='window'; only full-history stores can be resumed"):
        dp.Recorder.resume(tmp_path / "s")


@pytest.mark.parametrize("labels,message", [
    (np.array([0, np.nan, 1, 2]), r"labels hold 1 non-integer or non-finite values \(labels\[1\]=nan\)"),
    (np.array([0, np.inf, 1, 2]), r"labels\[1\]=inf"),
    (np.array([0, 1.5, 1, 2]), r"labels\[1\]=1\.5"),
    (np.array(["a", "b", "c", "d"]), r"labels have dtype <U1; expected integer class labels 0\.\.2"),
    (np.array([True, False, True, False]), r"labels have dtype bool"),
])
def test_recorder_refuses_bad_labels(labels, message, tmp_path):
    with pytest.raises(DataPruneError, match=message):
        dp.Recorder(4, tmp_path / "s", 3, labels=labels)
    assert not (tmp_path / "s" / "labels.npy").exists()


def test_recorder_takes_integral_float_labels(tmp_path):
    dp.Recorder(4, tmp_path / "s", 3, labels=np.array([0.0, 2.0, 1.0, 0.0]))
    assert dp.Dynamics.open(tmp_path / "s").labels.tolist() == [0, 2, 1, 0]


def test_end_epoch_without_updates_refused(tmp_path):
    """Decision: an epoch in which nothing was recorded is refused, not written as all-NaN."""
    rec = dp.Recorder(4, tmp_path / "s", 3)
    with pytest.raises(DataPruneError, match=r"nothing was recorded in epoch 0"):
        rec.end_epoch()  # before any update
    rec.update(torch.arange(4), torch.zeros(4, 3), torch.arange(4) % 3)
    assert rec.end_epoch() == 1
    with pytest.raises(DataPruneError, match=r"nothing was recorded in epoch 1 \(no update\(\) since the last"):
        rec.end_epoch()  # twice
    assert dp.Dynamics.open(tmp_path / "s").epochs == 1
    rec.update(torch.arange(2), torch.zeros(2, 3), torch.arange(2))  # recording goes on
    assert rec.end_epoch() == 2
    rec = dp.Recorder(2, tmp_path / "o", 3, nan_policy="omit")
    rec.update([0, 1], torch.full((2, 3), float("nan")), [0, 1])
    with pytest.raises(DataPruneError, match=r"nan_policy='omit'"):
        rec.end_epoch()


def test_nan_logits_message_fits_the_cli(tmp_path):
    rec = dp.Recorder(2, tmp_path / "s", 3)
    with pytest.raises(DataPruneError, match=r"NaN or inf; the model diverged \(try a lower learning rate, "
                                             r"or pass nan_policy='omit' to leave those samples unobserved\)$") as e:
        rec.update([0, 1], torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]), [0, 1])
    assert re.search(r"try a lower learning rate with --lr, or, with dataprune.Recorder in your own loop, "
                     r"pass nan_policy='omit' to leave", cli_terms(str(e.value)))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_inf_probabilities_are_invalid_not_unobserved(tmp_path, capsys):
    p = np.random.default_rng(0).random((6, 5))
    p[2, 1] = np.inf
    with pytest.raises(DataPruneError, match=r"prob holds infinite values at 1 samples \(first: sample 1\); "
                                             r"expected finite values"):
        dyn_unc(p, 2)
    p[2, 1] = np.nan  # unobserved is fine
    assert not np.isnan(dyn_unc(p, 2)).any()
    dyn = _store(tmp_path / "s", 4)
    prob = np.load(tmp_path / "s" / "prob.npy", mmap_mode="r+")
    prob[:, 3] = np.inf
    prob.flush()
    del prob, dyn
    for method, params in (("dyn-unc", ["--window", 2]), ("cartography", [])):
        err = cli_error(capsys, "select", tmp_path / "s", "--method", method, *params, "--prune-ratio", 0.5,
                        "--out", tmp_path / "k.txt")
        # the CLI verifies the store's value ranges before scoring
        assert "holds prob=inf at sample 3" in err and "never observed" not in err


# --- small CLI wording ----------------------------------------------------------------------------

import argparse  # noqa: E402

from dataprune.cli import build_parser  # noqa: E402


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_option_has_help(command):
    missing = [a.option_strings or [a.dest] for a in _subparsers()[command]._actions if not a.help]
    assert missing == [], f"dataprune {command}: options without help: {missing}"


def test_select_help_explains_special_defaults():
    text = " ".join(_subparsers()["select"].format_help().split())
    assert "grand, tdds: use only the first T recorded epochs (early scoring; default 0 = all recorded epochs)" in text
    assert "el2n, grand (default -1 = round(0.1*K), an early epoch)" in text
    assert "ssp (default 0 = number of classes)" in text


def test_demo_steps_are_numbered_once(data_dir, tmp_path, capsys, monkeypatch):
    """The demo says [1/5] .. [5/5], each once (it printed [4/4] twice)."""
    from dataprune.cli import demo
    monkeypatch.setattr(demo, "train_run", lambda *a, subset=None, **k: {
        "train_samples": 60 if subset is None else len(subset), "test_accuracy": 0.5, "seconds": 0.0})
    assert main(["demo", "--dataset", "idx", "--data-dir", str(data_dir), "--model", "mlp",
                 "--score-epochs", "3", "--window", "2", "--out", str(tmp_path / "d")]) == 0
    steps = re.findall(r"^\[(\d)/(\d)\]", capsys.readouterr().err, flags=re.M)
    assert steps == [(str(i), "5") for i in range(1, 6)]


def test_train_prints_percent(data_dir, tmp_path, capsys):
    assert main(["train", "--dataset", "idx", "--data-dir", str(data_dir), "--model", "mlp", "--epochs", "1",
                 "--metrics-out", str(tmp_path / "m.json")]) == 0
    captured = capsys.readouterr()
    acc = json.loads((tmp_path / "m.json").read_text())["test_accuracy"]
    assert f"test accuracy {100 * acc:.2f} % (top-1) after 1 epochs" in captured.out
    assert re.search(r"train acc \d+\.\d\d %", captured.err)


def test_config_records_image_size_used(finished_run):
    config = json.loads((finished_run / "config.json").read_text())
    assert config["image_size"] == 28  # the IDX images' side; an image folder records 32 by default
