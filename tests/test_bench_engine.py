"""The bench engine's folder rules and data regimes: a user's folder is never written into,
outputs are complete or absent (temp + rename, stale temps swept, a full disk names the
path), the long-tailed and noisy regimes, the matched-compute baseline's pairing, the
deprecated --budget spelling."""
import errno
import json
import math

import numpy as np
import pytest

from dataprune.bench.regimes import long_tail_indices
from dataprune.bench.stats import add_deltas, baseline_at
from dataprune.cli import build_parser, main
from dataprune.train.data import load_dataset


def tiny_bench(data_dir, out, *extra):
    return [str(a) for a in ("bench", "--dataset", "idx", "--data-dir", data_dir, "--out", out,
                             "--score-model", "mlp", "--train-models", "mlp", "--methods", "random,dyn-unc",
                             "--prune-ratios", "0.5", "--seeds", "1", "--score-epochs", "3", "--window", "2",
                             "--train-epochs", "1", "--batch-size", "64", "--quiet", "--threads", "1", *extra)]


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_that_is_not_a_bench_is_refused(tiny_idx_dir, tmp_path, capsys, force):
    user = tmp_path / "u"
    user.mkdir()
    (user / "checkpoint.pt").write_text("mine")
    args = tiny_bench(tiny_idx_dir, user, *(["--force"] if force else []))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not a dataprune bench folder" in err and "checkpoint.pt" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in user.iterdir()) == ["checkpoint.pt"]        # nothing written, no .lock
    assert (user / "checkpoint.pt").read_text() == "mine"
    assert main(["bench", "--report-only", "--out", str(user), "--quiet"]) == 2
    (tmp_path / "f").write_text("a file")
    assert main(tiny_bench(tiny_idx_dir, tmp_path / "f")) == 2
    assert "is a file" in capsys.readouterr().err


def test_regimes_outputs_complete_or_absent(tiny_idx_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "b"
    assert main(tiny_bench(tiny_idx_dir, out, "--imbalance", "10", "--imbalance-seed", "3",
                           "--label-noise", "0.2", "--no-baseline")) == 0
    # the long tail: 30 per class -> floor(30 * 10 ** (-c / 9)) samples of class c, seeded subset
    data = load_dataset("idx", str(tiny_idx_dir))
    kept = long_tail_indices(data.train_y.numpy(), 10, seed=3, num_classes=data.num_classes)
    np.testing.assert_array_equal(np.load(out / "imbalance/kept_indices.npy"), kept)
    assert np.bincount(data.train_y.numpy()[kept]).tolist() == [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    clean = np.load(out / "noise/clean_labels.npy")
    np.testing.assert_array_equal(clean, data.train_y.numpy()[kept])
    assert np.load(out / "noise/is_noisy.npy").sum() == round(0.2 * len(kept))  # noise on the long-tailed set
    rows = json.loads((out / "results.json").read_text())["rows"]
    full = next(r for r in rows if r["kind"] == "full")
    assert full["train_samples"] == len(kept) and full["imbalance"] == 10
    assert "long tail 10x" in (out / "table.md").read_text()
    # a changed regime is another configuration
    assert main(tiny_bench(tiny_idx_dir, out, "--imbalance", "100", "--imbalance-seed", "3",
                           "--label-noise", "0.2", "--no-baseline")) == 2
    assert "imbalance: 10.0 -> 100.0" in capsys.readouterr().err

    # temp files of killed writes are swept (not those inside score run folders, which sweep their own)
    stale = [out / ".results.csv.a1b2c3d4.tmp", out / "keep/mlp/.random.scores.npy.zz99yy88.tmp",
             out / "noise/.is_noisy.npy.abcdefgh.tmp", out / "cells/full/.mlp-seed0.json.q1w2e3r4.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    foreign = out / "score/mlp/.config.json.a1b2c3d4.tmp"
    foreign.write_bytes(b"x")
    assert main(["bench", "--report-only", "--out", str(out), "--quiet"]) == 0
    assert not any(p.exists() for p in stale) and foreign.exists()

    # a full disk while saving a figure: one line naming the file; the old figure stays whole
    import matplotlib.figure
    before = (out / "accuracy_vs_ratio.png").read_bytes()

    def full_disk(self, fname, **kw):
        fname.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    assert main(["bench", "--report-only", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no space left on device" in err and "accuracy_vs_ratio.png" in err and len(err.strip().splitlines()) == 1
    assert (out / "accuracy_vs_ratio.png").read_bytes() == before
    assert not list(out.glob(".*.tmp"))


def test_imbalance_needs_in_memory_data_and_a_factor(tiny_idx_dir, tmp_path, capsys):
    assert main(tiny_bench(tiny_idx_dir, tmp_path / "x", "--imbalance", "0.5")) == 2
    assert "--imbalance 0.5; expected a finite factor >= 1" in capsys.readouterr().err
    args = tiny_bench(tiny_idx_dir, tmp_path / "y", "--imbalance", "10")
    args[args.index("idx")] = "imagefolder"
    assert main(args) == 2
    assert "works with IDX datasets only" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_deprecated_budget_spelling(capsys):
    from dataprune.cli.bench import build_config
    parser = build_parser()
    base = ["bench", "--out", "x", "--prune-ratios", "0.25,0.5"]
    cfg = build_config(parser.parse_args([*base, "--budget", "iterations"]))
    assert cfg.subset_budget == "iterations" and cfg.baseline_budgets == []   # subsets cost ~1: no baseline
    assert "deprecated" in capsys.readouterr().err
    cfg = build_config(parser.parse_args(base))
    assert cfg.subset_budget == "epochs" and cfg.baseline_budgets == [0.75, 0.5]
    assert build_config(parser.parse_args([*base, "--no-baseline"])).baseline_budgets == []
    assert build_config(parser.parse_args([*base, "--baseline-budgets", "0.6"])).baseline_budgets == [0.6]
    assert main([*base, "--budget", "epochs", "--subset-budget", "iterations"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_baseline_at_hand_case_and_loop():
    # [(0.5, 0.90), (1.0, 0.92)] at 0.75 -> halfway: 0.91; at a point: that point; outside: NaN
    pts = [(1.0, 0.92), (0.5, 0.90)]
    assert baseline_at(pts, 0.75) == pytest.approx(0.91)
    assert baseline_at(pts, 0.5) == 0.90 and math.isnan(baseline_at(pts, 0.4)) and math.isnan(baseline_at([], 0.7))
    rng = np.random.default_rng(0)
    for _ in range(50):
        xs = np.sort(rng.choice(np.arange(1, 11) / 10, size=int(rng.integers(1, 6)), replace=False))
        ys = rng.random(len(xs))
        c = float(rng.uniform(0, 1.05))
        slow = math.nan
        for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
            if x0 <= c <= x1:
                slow = y0 + (y1 - y0) * (c - x0) / (x1 - x0)
        if len(xs) == 1 and abs(c - xs[0]) < 1e-12:
            slow = ys[0]
        got = baseline_at(list(zip(xs, ys)), c)
        assert (math.isnan(got) and math.isnan(slow)) or got == pytest.approx(slow)


def test_add_deltas_pairs_by_seed():
    # seed 0: full 0.92, baseline at 0.5 -> 0.90, a subset at cost 0.75 -> 0.915: Δ full -0.005,
    # Δ baseline 0.915 - 0.91 = +0.005; seed 1 has no baseline: Δ baseline NaN
    def row(kind, seed, cost, acc, secs=10.0):
        return dict(kind=kind, train_model="m", train_epochs=10, seed=seed, cost=cost, test_accuracy=acc,
                    train_seconds=secs, cpu_seconds="")
    rows = add_deltas([row("full", 0, 1.0, 0.92, 20.0), row("baseline", 0, 0.5, 0.90), row("subset", 0, 0.75, 0.915),
                       row("full", 1, 1.0, 0.93), row("subset", 1, 0.75, 0.925)])
    assert rows[2]["delta_vs_full"] == pytest.approx(-0.005) and rows[2]["delta_vs_baseline"] == pytest.approx(0.005)
    assert rows[2]["wall_vs_full"] == 0.5 and math.isnan(rows[2]["cpu_vs_full"])
    assert rows[1]["delta_vs_baseline"] == "" and rows[0]["delta_vs_full"] == 0
    assert math.isnan(rows[4]["delta_vs_baseline"]) and rows[4]["delta_vs_full"] == pytest.approx(-0.005)


def test_a_killed_baseline_cell_resumes_in_its_run_folder(tiny_idx_dir, tmp_path, monkeypatch):
    # one-run study with only the full run and a baseline at B = 0.6 of 3 epochs x 5 steps = 9 steps
    # (2 epochs: 5 + 4 steps); killed after its first epoch, the rerun trains only the second
    from dataprune.bench.one_run_study import OneRunConfig
    from dataprune.bench.runner import run_bench
    from dataprune.bench.plan import Variant
    from dataprune.train.training import Training
    config = OneRunConfig(dataset="idx", data_dir=str(tiny_idx_dir), batch_size=64, arms=[("mlp", 3)], seeds=[0],
                          variants=[Variant("full")], baseline_budgets=[0.6])
    ref = run_bench(tmp_path / "ref", config).rows()
    real, trained, killed = Training.epoch, [], []

    def dying(self, epoch, **kw):
        if self.total_steps is not None and epoch == 1 and not killed:
            killed.append(epoch)
            raise KeyboardInterrupt
        trained.append((self.total_steps, epoch))
        return real(self, epoch, **kw)
    monkeypatch.setattr(Training, "epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        run_bench(tmp_path / "b", config)
    trained.clear()
    got = run_bench(tmp_path / "b", config).rows()
    assert trained == [(9, 1)]                       # only the baseline's missing epoch ran
    base, ref_base = (next(r for r in rows if r["kind"] == "baseline") for rows in (got, ref))
    assert base["optimizer_steps"] == ref_base["optimizer_steps"] == 9
    assert base["test_accuracy"] == ref_base["test_accuracy"] and base["sample_passes"] == 300 + 4 * 64
