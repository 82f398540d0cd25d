"""Store integrity: every file a method reads (features, final logits, the store) is covered
by a digest, and a partial store (a run or an import-official still being written, or killed)
is told from a finished one."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune import interop
from dataprune.cli import main
from dataprune.run_outputs import FEATURES_FILE, LOGITS_FILE
from helpers_methods import methods_reading

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def run(finished_run, tmp_path):
    """A private copy of a finished `dataprune record` run (features, final logits, store)."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def _change_one_row(file: Path) -> None:
    arr = np.load(file)
    arr[3] = arr[3] + 1
    np.save(file, arr)


def _select(run, method, out, *extra):
    return main(["select", str(run), "--method", method, "--prune-ratio", "0.5", "--out", str(out), *extra])


# --- features.npy and final_logits.npy are covered ------------------------------------------------

@pytest.mark.parametrize("file", [FEATURES_FILE, LOGITS_FILE])
def test_a_changed_row_of_a_final_output_is_refused(run, tmp_path, capsys, file):
    methods = methods_reading(file)  # every registered method that reads it
    assert methods
    assert main(["check", str(run)]) == 0
    _change_one_row(run / file)
    assert main(["check", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / file} does not match its digest" in err and len(err.strip().splitlines()) == 1
    for method in methods:
        assert _select(run, method, tmp_path / f"{method}.txt") == 2
        assert f"{file} does not match its digest" in capsys.readouterr().err
        assert not (tmp_path / f"{method}.txt").exists() and not (tmp_path / f"{method}.json").exists()
        with pytest.raises(dp.DataPruneError, match="does not match its digest"):
            dp.score(method, dp.Dynamics.open(run))


def test_the_manifest_fingerprint_covers_the_files_read(run, tmp_path):
    assert _select(run, "moderate", tmp_path / "a.txt") == 0
    first = json.loads((tmp_path / "a.json").read_text())
    assert list(first["input_files"]) == [str((run / "features.npy").resolve())]
    # the run's final outputs written again, differently (a legitimate rewrite, new digests)
    feats = np.load(run / "features.npy").astype(np.float32)
    dp.save_final_outputs(run, np.load(run / "final_logits.npy"), feats[::-1].copy(), force=True)
    assert main(["check", str(run)]) == 0
    assert _select(run, "moderate", tmp_path / "b.txt") == 0
    second = json.loads((tmp_path / "b.json").read_text())
    assert second["store_fingerprint"] == first["store_fingerprint"]
    assert second["inputs_fingerprint"] != first["inputs_fingerprint"]
    assert _select(run, "forgetting", tmp_path / "d.txt") == 0  # store only: no input files
    assert "input_files" not in json.loads((tmp_path / "d.json").read_text())


def test_a_removed_digest_record_is_refused_by_check(run, capsys):
    (run / "final_outputs.json").unlink()
    assert main(["check", str(run)]) == 2
    assert "has no digest" in capsys.readouterr().err


def test_an_explicit_features_file_is_recorded(run, tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).random((dp.Dynamics.open(run).num_samples, 5)).astype(np.float32))
    assert _select(run, "moderate", tmp_path / "k.txt", "--features", str(emb)) == 0
    manifest = json.loads((tmp_path / "k.json").read_text())
    assert list(manifest["input_files"]) == [str(emb.resolve())]


# --- finished or not ------------------------------------------------------------------------------

def _recorder_epochs(path, epochs_done, planned=None, **kw):
    rec = dp.Recorder(10, path, 3, epochs=planned, **kw)
    for _ in range(epochs_done):
        rec.update(torch.arange(10), torch.randn(10, 3), torch.arange(10) % 3)
        rec.end_epoch()
    return rec


def test_finished_follows_the_plan_finish_and_with_blocks(tmp_path):
    rec = _recorder_epochs(tmp_path / "a", 2, planned=3)
    dyn = dp.Dynamics.open(tmp_path / "a")
    assert dyn.finished is False and dyn.planned_epochs == 3
    assert "unfinished: 2 of 3 planned epochs recorded" in dyn.unfinished_note()
    rec.update(torch.arange(10), torch.randn(10, 3), torch.arange(10) % 3)
    rec.end_epoch()
    assert dp.Dynamics.open(tmp_path / "a").finished is True
    rec = _recorder_epochs(tmp_path / "b", 2)  # nothing planned: unknown until finish()
    assert dp.Dynamics.open(tmp_path / "b").finished is None
    rec.finish()
    assert dp.Dynamics.open(tmp_path / "b").finished is True
    rec = _recorder_epochs(tmp_path / "c", 1, planned=5)  # early stopping, said so
    rec.finish()
    assert dp.Dynamics.open(tmp_path / "c").finished is True
    with _recorder_epochs(tmp_path / "d", 1, planned=5):
        pass
    assert dp.Dynamics.open(tmp_path / "d").finished is True
    with pytest.raises(RuntimeError):
        with _recorder_epochs(tmp_path / "e", 1, planned=5):
            raise RuntimeError("crash")
    assert dp.Dynamics.open(tmp_path / "e").finished is False


def test_resuming_a_store_makes_it_unfinished_again(tmp_path):
    rec = _recorder_epochs(tmp_path / "s", 2, planned=2)
    rec.finish()
    dp.Recorder.resume(tmp_path / "s", epochs=1)
    dyn = dp.Dynamics.open(tmp_path / "s")
    assert dyn.finished is False and dyn.planned_epochs == 2 and dyn.epochs == 1


def test_stores_written_before_the_flag_still_open(tmp_path):
    """Old meta.json: no planned_epochs / finished; capacity was the planned epochs unless
    it was the default 64."""
    _recorder_epochs(tmp_path / "old", 2, planned=3)
    _recorder_epochs(tmp_path / "old64", 2)
    for name, capacity, expected in (("old", 3, False), ("old64", 64, None)):
        meta_file = tmp_path / name / "meta.json"
        meta = json.loads(meta_file.read_text())
        del meta["planned_epochs"], meta["finished"]
        meta_file.write_text(json.dumps(meta))
        dyn = dp.Dynamics.open(tmp_path / name)
        assert meta["capacity"] == capacity and dyn.finished is expected
        dyn.verify()
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    meta["capacity"] = meta["epochs"]
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta))
    assert dp.Dynamics.open(tmp_path / "old").finished is True


def test_select_and_scores_warn_on_an_unfinished_store(tmp_path, capsys):
    _recorder_epochs(tmp_path / "s", 3, planned=5)
    assert _select(tmp_path / "s", "forgetting", tmp_path / "k.txt") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unfinished: 3 of 5 planned epochs recorded" in err[0], err
    assert main(["scores", str(tmp_path / "s"), "--methods", "forgetting,dual", "--window", "2",
                 "--out", str(tmp_path / "s.csv")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 1  # said once per store (already said above in this process)
    assert main(["check", str(tmp_path / "s")]) == 0
    assert "UNFINISHED: 3 of 5 planned epochs recorded" in capsys.readouterr().out


def test_select_warns_on_a_scoring_run_still_being_written(run, tmp_path, capsys):
    """A `dataprune record` run's store plans the run's epochs: one holding fewer (a run
    still being written: here its last epoch taken back) is unfinished."""
    assert dp.Dynamics.open(run).finished is True
    dp.Recorder.resume(run / "dynamics", epochs=1)
    assert _select(run, "forgetting", tmp_path / "k.txt") == 0
    assert "unfinished: 1 of 2 planned epochs recorded" in capsys.readouterr().err


def test_a_finished_store_gives_no_warning(tmp_path, capsys):
    _recorder_epochs(tmp_path / "s", 3, planned=3)
    assert _select(tmp_path / "s", "forgetting", tmp_path / "k.txt") == 0
    assert capsys.readouterr().err == ""
    assert main(["check", str(tmp_path / "s")]) == 0
    assert "UNFINISHED" not in capsys.readouterr().out


# --- a killed import-official ---------------------------------------------------------------------

KILL_AFTER_3 = """
import os, sys
from dataprune import interop, store
write = store.StoreWriter.write_epoch
def killed(self, rows, labels_seen=None):
    k = write(self, rows, labels_seen)
    if k == 3:
        os._exit(9)  # killed: no cleanup, no exception handler
    return k
store.StoreWriter.write_epoch = killed
interop.import_official(sys.argv[1], sys.argv[2], file_list=sys.argv[3])
"""


@pytest.fixture
def official(tmp_path):
    prob = np.random.default_rng(0).random((6, 20))
    hist = tmp_path / "official" / "pred_prob_history"
    hist.mkdir(parents=True)
    for e, row in enumerate(prob):
        np.savetxt(hist / f"prob_{e}.txt", row, fmt="%.18e")
    (tmp_path / "list.txt").write_text("".join(f"c{i % 2}/img{i}.png {i % 2}\n" for i in range(20)))
    return tmp_path / "official", tmp_path / "list.txt"


def _killed_import(src, out, file_list):
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run([sys.executable, "-c", KILL_AFTER_3, str(src), str(out), str(file_list)], env=env)
    assert r.returncode == 9


def test_a_killed_import_is_unfinished_and_a_rerun_resumes_it(official, tmp_path, capsys):
    src, file_list = official
    _killed_import(src, tmp_path / "s", file_list)
    assert main(["check", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "UNFINISHED: 3 of 6 planned epochs recorded" in out and "import-official" in out
    assert dp.Dynamics.open(tmp_path / "s").finished is False
    assert main(["import-official", str(src), "--out", str(tmp_path / "s"), "--file-list", str(file_list)]) == 0
    assert "imported 6 epochs" in capsys.readouterr().out
    whole = interop.import_official(src, tmp_path / "whole", file_list=file_list)
    resumed = dp.Dynamics.open(tmp_path / "s")
    assert resumed.finished is True and resumed.fingerprint == whole.fingerprint
    assert (tmp_path / "s" / "file_list.txt").read_text() == file_list.read_text()
    assert main(["check", str(tmp_path / "s")]) == 0
    assert "UNFINISHED" not in capsys.readouterr().out
    # a finished store is refused without --force, as before
    assert main(["import-official", str(src), "--out", str(tmp_path / "s"), "--file-list", str(file_list)]) == 2


def test_a_killed_import_is_replaced_with_force_and_other_sources_are_refused(official, tmp_path, capsys):
    src, file_list = official
    _killed_import(src, tmp_path / "s", file_list)
    np.savetxt(src / "pred_prob_history" / "prob_1.txt", np.full(20, 0.25), fmt="%.18e")  # the source changed
    assert main(["import-official", str(src), "--out", str(tmp_path / "s"), "--file-list", str(file_list)]) == 2
    assert "unfinished import (3 of 6 epochs) of other files" in capsys.readouterr().err
    assert main(["import-official", str(src), "--out", str(tmp_path / "s"), "--file-list", str(file_list),
                 "--force"]) == 0
    dyn = dp.Dynamics.open(tmp_path / "s")
    assert dyn.finished is True and dyn.epochs == 6 and float(dyn.prob[1, 0]) == 0.25


def test_an_edited_file_list_is_refused(official, tmp_path, capsys):
    src, file_list = official
    interop.import_official(src, tmp_path / "s", file_list=file_list)
    lines = (tmp_path / "s" / "file_list.txt").read_text().splitlines()
    lines[4] = lines[4][:-1] + "1" if lines[4].endswith("0") else lines[4][:-1] + "0"
    (tmp_path / "s" / "file_list.txt").write_text("\n".join(lines) + "\n")
    assert main(["select", str(tmp_path / "s"), "--method", "dyn-unc", "--window", "2", "--prune-ratio", "0.5",
                 "--out", str(tmp_path / "k.txt"), "--file-list"]) == 2
    assert "file_list.txt line 5 has label" in capsys.readouterr().err


def test_a_run_written_before_digests_is_read_with_a_warning(run, tmp_path, capsys):
    """A run from an older dataprune: no final_outputs.json, a store meta.json without
    planned_epochs/finished. It still checks OK (files named unverified) and selects, with
    one warning line about the unverified file."""
    (run / "final_outputs.json").unlink()
    meta_file = run / "dynamics" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["planned_epochs"], meta["finished"]
    meta_file.write_text(json.dumps(meta))
    assert main(["check", str(run)]) == 0
    assert "final_logits.npy, features.npy unverified" in capsys.readouterr().out
    assert _select(run, "moderate", tmp_path / "k.txt") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "features.npy has no recorded digest" in err[0], err
