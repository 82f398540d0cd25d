"""Pruning inside one training run (--prune-at T), InfoBatch, and their CLI, on tiny data."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from conftest import killed_at_epoch
from dataprune.cli import main
from dataprune.errors import DataPruneError
from dataprune.keepfile import read_keep
from dataprune.train.data import InMemoryLoader
from dataprune.train.infobatch import InfoBatch
from dataprune.train.loop import ProgressSchedule, TrainConfig, make_optimizer, record_points
from dataprune.train.one_run import PrunePlan, resume_run, start_run
from dataprune.train.prune_at import resolve_method_params
from dataprune.train.runs import DataSpec

N = 300  # tiny_idx_dir's training samples
CFG = TrainConfig(epochs=5, batch_size=64, seed=3)


@pytest.fixture
def seen(monkeypatch):
    """Sample indices the loader yields, per epoch: {epoch: [idx, ...]}."""
    record: dict[int, list[int]] = {}
    original = InMemoryLoader.__iter__

    def spy(self):
        for x, y, idx in original(self):
            record.setdefault(self.epoch, []).extend(idx.tolist())
            yield x, y, idx
    monkeypatch.setattr(InMemoryLoader, "__iter__", spy)
    return record


def _run(tmp_path, d, plan, name="run", cfg=CFG):
    return start_run(tmp_path / name, DataSpec("idx", str(d)), model="mlp", cfg=cfg, plan=plan)


# --- the one-run loop --------------------------------------------------------------------------
def test_subset_is_used_after_prune_at(tmp_path, tiny_idx_dir, seen):
    m = _run(tmp_path, tiny_idx_dir, PrunePlan(prune_at=2, method="forgetting", prune_ratio=0.3))
    keep = read_keep(m["keep_file"], N)
    assert len(keep) == N - 90
    for epoch in range(5):
        got = sorted(seen[epoch])
        assert got == (list(range(N)) if epoch < 2 else keep.tolist())  # each sample once, right set
    assert m["samples_per_epoch"] == [300, 300, 210, 210, 210]
    assert m["sample_passes"] == 2 * 300 + 3 * 210 == sum(len(v) for v in seen.values())
    assert m["full_equivalent"] == pytest.approx(1230 / 1500)
    assert m["optimizer_steps"] == 2 * math.ceil(300 / 64) + 3 * math.ceil(210 / 64)
    dyn = dp.Dynamics.open(tmp_path / "run" / "dynamics")
    assert dyn.epochs == 2 and dyn.meta["view"] == "train"  # only the T scoring epochs, free view
    manifest = json.loads((tmp_path / "run" / "keep.json").read_text())
    assert manifest["prune_at"] == 2 and manifest["method"] == "forgetting" and manifest["kept"] == 210


def test_record_every_splits_epochs_into_recordings(tmp_path, tiny_idx_dir):
    m = _run(tmp_path, tiny_idx_dir, PrunePlan(prune_at=2, method="dyn-unc", prune_ratio=0.5, record_every=0.5))
    dyn = dp.Dynamics.open(tmp_path / "run" / "dynamics")
    assert dyn.epochs == 4 and m["plan"]["params"] == {"window": 3}  # J = min(10, 4 - 1)
    seen_twice = ~np.isnan(np.asarray(dyn.prob, dtype=float))
    assert (seen_twice[:2].sum(0) == 1).all() and (seen_twice[2:].sum(0) == 1).all()  # once an epoch
    assert record_points(5, 0.5) == {3, 5} and record_points(4, 1.0) == {4}


def test_random_at_zero_prunes_before_training(tmp_path, tiny_idx_dir, seen):
    m = _run(tmp_path, tiny_idx_dir, PrunePlan(prune_at=0, method="random", prune_ratio=0.5))
    assert m["samples_per_epoch"] == [150] * 5 and m["full_equivalent"] == 0.5
    assert m["plan"]["params"] == {"seed": 3}  # the training seed
    assert all(sorted(v) == read_keep(m["keep_file"]).tolist() for v in seen.values())


def test_full_run_metrics(tmp_path, tiny_idx_dir, seen):
    m = _run(tmp_path, tiny_idx_dir, PrunePlan())
    assert m["sample_passes"] == 5 * N and m["full_equivalent"] == 1.0 and m["keep_file"] is None
    assert m["seconds"] > 0 and m["cpu_seconds"] > 0


@pytest.mark.parametrize("kill_after", [1, 3])  # in the recording phase / on the subset
def test_kill_and_resume_continues_in_the_right_phase(tmp_path, tiny_idx_dir, monkeypatch, kill_after, seen):
    plan = PrunePlan(prune_at=2, method="forgetting", prune_ratio=0.3)
    ref = _run(tmp_path, tiny_idx_dir, plan, "ref")
    with killed_at_epoch(monkeypatch, kill_after), pytest.raises(KeyboardInterrupt):
        _run(tmp_path, tiny_idx_dir, plan, "killed")
    seen.clear()
    got = resume_run(tmp_path / "killed")
    assert sorted(seen) == list(range(kill_after, 5))  # only the missing epochs ran
    keep = read_keep(tmp_path / "killed" / "keep.txt").tolist()
    for e in range(kill_after, 5):
        assert sorted(seen[e]) == (list(range(N)) if e < 2 else keep)
    assert keep == read_keep(ref["keep_file"]).tolist()
    for k in ("samples_per_epoch", "sample_passes", "optimizer_steps", "test_accuracy"):
        assert got[k] == ref[k]
    assert got["final_train_loss"] == pytest.approx(ref["final_train_loss"], rel=1e-5)
    assert resume_run(tmp_path / "killed")["sample_passes"] == ref["sample_passes"]  # finished: as is


def test_unpruned_one_run_equals_the_reference_training(tmp_path, tiny_idx_dir):
    from dataprune.train.runs import train_run
    cfg = TrainConfig(epochs=3, batch_size=64, seed=2)
    ref = train_run(DataSpec("idx", str(tiny_idx_dir)), model="mlp", cfg=cfg)
    got = _run(tmp_path, tiny_idx_dir, PrunePlan(), cfg=cfg)
    assert got["final_train_loss"] == pytest.approx(ref["final_train_loss"], rel=1e-5)
    assert got["test_accuracy"] == ref["test_accuracy"] and got["sample_passes"] == ref["sample_passes"]


def test_existing_run_folder_is_refused(tmp_path, tiny_idx_dir):
    _run(tmp_path, tiny_idx_dir, PrunePlan(), cfg=TrainConfig(epochs=1, batch_size=64))
    with pytest.raises(DataPruneError, match="already holds a finished `dataprune train` run"):
        _run(tmp_path, tiny_idx_dir, PrunePlan(), cfg=TrainConfig(epochs=1, batch_size=64))


def test_force_never_deletes_a_users_folder(tmp_path, tiny_idx_dir, capsys):
    """`train --prune-at ... --out v --force` on a folder that is no training run keeps its files."""
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "precious.txt").write_text("x")
    rc = main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "2",
               "--prune-at", "1", "--method", "el2n", "--prune-ratio", "0.3", "--out", str(tmp_path / "v"),
               "--force", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--force" in err, err
    assert (tmp_path / "v" / "precious.txt").read_text() == "x"


def test_second_process_on_the_same_run_folder_is_refused(tmp_path, tiny_idx_dir, capsys):
    from dataprune.fileio import exclusive_lock
    argv = ["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "2",
            "--prune-at", "1", "--method", "el2n", "--prune-ratio", "0.3", "--out", str(tmp_path / "r"), "--quiet"]
    with exclusive_lock(tmp_path / "r", "test"):  # another open file on the lock: flock conflicts
        assert main(argv) == 2
        assert "is in use by another" in capsys.readouterr().err
    assert main(argv) == 0  # released


# --- schedule ------------------------------------------------------------------------------------
def test_progress_schedule_advances_through_equal_epochs_by_itself():
    """Without start_epoch calls (train()'s default), epochs of equal size follow each other,
    and the LRs equal those of explicit start_epoch calls (the lifecycle's way)."""
    cfg = TrainConfig(epochs=4, warmup_epochs=1.0)
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt_a, sched_a = make_optimizer(a, cfg, 7)
    opt_b, _ = make_optimizer(b, cfg, 7)
    prog = ProgressSchedule(opt_b, 4, 1.0)
    for epoch in range(4):
        prog.start_epoch(epoch, 7)
        for _ in range(7):
            assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
            opt_a.step()
            sched_a.step()
            prog.step()


def test_progress_schedule_follows_epoch_progress_on_smaller_epochs():
    # epoch 2 of 4 with 3 batches: progress 2, 2.33, 2.67 -> cosine over (p - 1) / 3
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    prog = ProgressSchedule(opt, 4, 1.0)
    prog.start_epoch(2, 3)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        prog.step()
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * (p - 1) / 3)) for p in (2, 2 + 1 / 3, 2 + 2 / 3)])


# --- InfoBatch -----------------------------------------------------------------------------------
def _slow_infobatch(scores: np.ndarray, ratio: float) -> tuple[set[int], int]:
    mean = sum(scores) / len(scores)
    well = [i for i, s in enumerate(scores) if s < mean]
    return set(range(len(scores))) - set(well), int((1 - ratio) * len(well))


def test_infobatch_hand_case():
    ib = InfoBatch(4, 8, seed=0)
    ib.scores = torch.tensor([0.1, 0.2, 0.9, 1.0])  # mean 0.55: samples 0, 1 are well learned
    idx = ib.epoch_indices(1)
    assert len(idx) == 3 and {2, 3} <= set(idx.tolist())
    kept_well = [i for i in idx if i < 2]
    assert ib.weights.tolist() == [2.0 if i in kept_well else 1.0 for i in range(4)]


@pytest.mark.parametrize("seed", range(4))
def test_infobatch_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = 101
    ib = InfoBatch(n, 16, ratio=0.5, seed=seed)
    ib.scores = torch.from_numpy(rng.exponential(size=n).astype(np.float32))
    must, kept_well = _slow_infobatch(ib.scores.tolist(), 0.5)
    idx = ib.epoch_indices(3)
    assert must <= set(idx.tolist()) and len(idx) == len(must) + kept_well
    assert np.all(np.diff(idx) > 0)
    w = ib.weights.numpy()
    assert set(np.flatnonzero(w == 2.0)) == set(idx.tolist()) - must and np.all(w[w != 2.0] == 1.0)
    again = InfoBatch(n, 16, ratio=0.5, seed=seed)
    again.scores = ib.scores.clone()
    assert np.array_equal(again.epoch_indices(3), idx)  # seeded
    # the loss: mean of weighted per-sample cross-entropies; it stores the un-weighted ones
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    b = torch.tensor(idx[:5])
    loss = ib.loss(logits, y, b)
    ce = [float(torch.nn.functional.cross_entropy(logits[i:i + 1], y[i:i + 1])) for i in range(5)]
    assert float(loss) == pytest.approx(sum(c * w[int(j)] for c, j in zip(ce, b)) / 5, rel=1e-5)
    assert ib.scores[b].tolist() == pytest.approx(ce, rel=1e-5)


def test_infobatch_in_the_loop(tmp_path, tiny_idx_dir, seen):
    cfg = TrainConfig(epochs=8, batch_size=64, seed=1)
    m = _run(tmp_path, tiny_idx_dir, PrunePlan(dynamic="infobatch"), cfg=cfg)
    per = m["samples_per_epoch"]
    assert per[0] == N                       # every stored loss starts at 3.0: none below the mean
    assert per[7] == N                       # floor(0.875 * 8) = 7: the last epoch uses the full set
    assert all(p < N for p in per[1:7])
    assert per == [len(seen[e]) for e in range(8)] and m["sample_passes"] == sum(per)
    assert all(len(set(seen[e])) == len(seen[e]) for e in range(8))


# --- parameters and bad input ---------------------------------------------------------------------
def test_method_defaults_for_early_scoring():
    assert resolve_method_params("dyn-unc", 3) == {"window": 2}
    assert resolve_method_params("dyn-unc", 20) == {"window": 10}
    assert resolve_method_params("dyn-unc", 2, 2) == {"window": 3}
    assert resolve_method_params("el2n", 4) == {"epoch": 3}
    assert resolve_method_params("random", 0, seed=5) == {"seed": 5}
    assert resolve_method_params("forgetting", 2) == {}
    assert resolve_method_params("dual", 5) == {"window": 4}
    assert resolve_method_params("dual", 2, params={"window": 2}) == {"window": 2}  # T-J+1 = 1 window
    with pytest.raises(DataPruneError, match=r"window=3 does not fit: .*expected 2 <= window <= 2"):
        resolve_method_params("dyn-unc", 3, params={"window": 3})


@pytest.mark.parametrize("args, message", [
    (["--prune-at", "5"], r"--prune-at 5 with --epochs 5; expected 0 <= T < 5"),
    (["--prune-at", "2", "--method", "dyn-unc"], r"too few for method 'dyn-unc'"),
    (["--prune-at", "1", "--method", "forgetting"], r"too few for method 'forgetting'"),
    (["--prune-at", "3", "--method", "dyn-unc", "--window", "3"], r"window=3 does not fit"),
    (["--prune-at", "2", "--prune-ratio", "1.5"], r"prune_ratio=1.5; expected"),
    (["--prune-at", "2", "--prune-ratio", "0"], r"--prune-ratio 0.0; expected a fraction in \(0, 1\)"),
    (["--prune-at", "0", "--method", "el2n"], r"--prune-at 0 with method 'el2n'"),
    (["--prune-at", "2", "--method", "moderate"], r"reads features.npy"),
    (["--prune-at", "2", "--record-every", "0.3"], r"record_every=0.3; expected 1/m"),
    (["--prune-at", "2", "--record-every", "0.5", "--method", "el2n"], r"expected --record-every 1"),
    (["--prune-at", "2", "--method", "nope"], r"unknown method 'nope'"),
    (["--dynamic", "infobatch", "--prune-at", "2"], r"exclude each other"),
    (["--dynamic", "infobatch", "--infobatch-ratio", "1"], r"infobatch ratio=1.0"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, tiny_idx_dir, capsys, args, message):
    rc = main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "5",
               "--out", str(tmp_path / "r"), "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "r").exists()  # checked before anything is written


def test_cli_prune_at_writes_metrics_and_run_folder(tmp_path, tiny_idx_dir, capsys):
    m = tmp_path / "m.json"
    rc = main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "4",
               "--batch-size", "64", "--prune-at", "3", "--method", "dyn-unc", "--prune-ratio", "0.5",
               "--metrics-out", str(m), "--quiet", "--threads", "1"])
    assert rc == 0
    got = json.loads(m.read_text())
    assert got["keep_file"] == str(tmp_path / "m.run" / "keep.txt") and Path(got["keep_file"]).exists()
    assert got["sample_passes"] == 3 * N + 150 and got["full_equivalent"] == pytest.approx(1050 / 1200)
    assert "keep file" in capsys.readouterr().out
    # a plain `train` gains the cost fields too
    rc = main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "2",
               "--batch-size", "64", "--metrics-out", str(tmp_path / "p.json"), "--quiet", "--threads", "1"])
    plain = json.loads((tmp_path / "p.json").read_text())
    assert rc == 0 and plain["sample_passes"] == 2 * N and plain["full_equivalent"] == 1.0 and plain["seconds"] > 0
    # --resume of a finished run returns its metrics
    assert main(["train", "--resume", str(tmp_path / "m.run"), "--quiet", "--metrics-out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["sample_passes"] == got["sample_passes"]


def test_cli_prune_at_without_value_uses_the_defaults(tmp_path, tiny_idx_dir):
    from dataprune.cli.train import default_prune_at
    assert [default_prune_at(e) for e in (2, 10, 15, 20)] == [1, 3, 5, 7]
    m = tmp_path / "m.json"
    assert main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "5",
                 "--batch-size", "64", "--prune-at", "--metrics-out", str(m), "--quiet", "--threads", "1"]) == 0
    plan = json.loads(m.read_text())["plan"]
    # T = round(5/3) = 2; R = (1 - 0.75) / (1 - 2/5) = 0.4167: the run costs 0.75 of the full one
    assert (plan["prune_at"], plan["method"], plan["mislabeled"]) == (2, "el2n", "auto")
    assert plan["prune_ratio"] == pytest.approx(0.25 / 0.6)
    assert json.loads(m.read_text())["full_equivalent"] == pytest.approx(0.75, abs=0.01)


# --- the sampler for users' own loops ---------------------------------------------------------------
def test_prune_at_sampler_phases_and_ddp_shards():
    s = dp.PruneAt(10, prune_at=2, seed=7)
    s.set_epoch(0)
    e0 = list(s)
    assert sorted(e0) == list(range(10)) and s.recording
    s.set_epoch(1)
    assert list(s) != e0 and s.recording  # a new order each epoch
    s.set_keep(np.array([8, 1, 5]))
    s.set_epoch(2)
    assert sorted(s) == [1, 5, 8] and len(s) == 3 and not s.recording
    again = dp.PruneAt(10, prune_at=2, seed=7)
    again.set_epoch(0)
    assert list(again) == e0  # deterministic from (seed, epoch)
    shards = []
    for rank in range(3):
        r = dp.PruneAt(10, prune_at=2, seed=7, rank=rank, world_size=3)
        r.set_epoch(0)
        shards.append(list(r))
        assert len(r) == 4
    assert sum(shards, []) != [] and sorted(set(sum(shards, []))) == list(range(10))
    assert [x for t in zip(*shards) for x in t][:10] == e0  # rank r takes every 3rd from r
    with pytest.raises(DataPruneError, match="expected a non-empty subset"):
        s.set_keep(np.array([10]))


def test_docs_prune_at_example_runs(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[1] / "docs" / "one-run.md").read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "docs/one-run.md", "exec"), scope)
    assert len(scope["keep"]) == 700 and sorted(scope["sampler"]) == scope["keep"].tolist()


# --- the bench study ------------------------------------------------------------------------------
def test_pareto_front():
    from dataprune.bench.stats import pareto
    assert pareto([(1, 90), (0.5, 91), (0.7, 89)]) == [1]
    pts = [(1.0, 0.9), (0.8, 0.89), (0.8, 0.88), (0.5, 0.85), (0.9, 0.87)]
    slow = [i for i, (c, a) in enumerate(pts)
            if not any((c2 <= c and a2 > a) or (c2 < c and a2 == a) for c2, a2 in pts)]
    assert sorted(pareto(pts)) == slow == [0, 1, 3]


def test_bench_one_run_study_resumes_and_reports(tmp_path, tiny_idx_dir, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--study", "one-run", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--train-models",
            "mlp", "--train-epochs", "3", "--methods", "forgetting,dyn-unc", "--prune-at", "1,2", "--prune-ratios",
            "0.5", "--seeds", "1", "--batch-size", "64", "--out", str(out), "--quiet", "--threads", "1"]
    assert main([*argv, "--max-cells", "2"]) == 0
    # 4 variants (dyn-unc: T <= 2; forgetting: T = 1) + the baseline budget curve 0.5..0.9
    assert "2 of 9 training cells finished" in capsys.readouterr().out
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    variants = [r["method"] for r in rows if r["kind"] != "baseline"]
    assert variants == ["full", "random r=0.5", "infobatch", "forgetting T=2 r=0.5"]
    assert [r["compute_budget"] for r in rows if r["kind"] == "baseline"] == [0.5, 0.6, 0.7, 0.8, 0.9]
    by = {r["method"]: r for r in rows}
    assert by["random r=0.5"]["full_equivalent"] == 0.5 == by["random r=0.5"]["cost"]
    assert by["full"]["wall_vs_full"] == 1.0
    assert by["forgetting T=2 r=0.5"]["sample_passes"] == 2 * N + 150
    f = by["forgetting T=2 r=0.5"]
    assert by["full"]["delta_vs_full"] == 0 and f["delta_vs_full"] == f["test_accuracy"] - by["full"]["test_accuracy"]
    table = (out / "table.md").read_text()
    assert "| forgetting T=2 r=0.5 |" in table and "Target" in table and (out / "accuracy_vs_cost.png").exists()
    (out / "table.md").unlink()
    assert main(["bench", "--report-only", "--out", str(out), "--quiet"]) == 0
    assert (out / "table.md").read_text().split("\n", 3)[3] == table.split("\n", 3)[3]


def test_ratio_for_cost_and_its_refusals(tmp_path, tiny_idx_dir, capsys):
    from dataprune.cli.train import ratio_for_cost
    # E = 10, T = 3, cost 0.75: 3/10 + 7/10 (1 - R) = 0.75 -> R = 0.25 / 0.7 = 0.3571
    assert ratio_for_cost(0.75, 3, 10) == pytest.approx(0.25 / 0.7)
    for cost, message in ((0.2, r"--cost 0.2 with --prune-at 3 of --epochs 10 needs a prune ratio"),
                          (float("nan"), r"--cost nan; expected a fraction 0 < C <= 1")):
        with pytest.raises(dp.DataPruneError, match=message):
            ratio_for_cost(cost, 3, 10)
    rc = main(["train", "--dataset", "idx", "--data-dir", str(tiny_idx_dir), "--model", "mlp", "--epochs", "5",
               "--prune-at", "2", "--prune-ratio", "0.3", "--cost", "0.8", "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 2 and "--cost chooses the ratio of --prune-at" in capsys.readouterr().err
