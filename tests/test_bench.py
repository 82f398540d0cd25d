"""`dataprune bench` end to end on the tiny synthetic IDX set: outputs, table, resume, conflicts."""
import csv
import json
import math

import numpy as np
import pytest

from dataprune.bench import BenchConfig, Scorer, Selector, cost_config, main_config
from dataprune.bench.engine import Bench
from dataprune.bench.plan import TrainCell
from dataprune.bench.report import OUTPUTS
from dataprune.bench.tables import FIELDS, parse_table_md
from dataprune.cli import main


def bench_args(data_dir, out, *extra):
    return [str(a) for a in ("bench", "--dataset", "idx", "--data-dir", data_dir, "--out", out,
                             "--score-model", "small-cnn", "--train-models", "mlp",
                             "--methods", "dyn-unc,random", "--prune-ratios", "0.25", "--seeds", "1",
                             "--score-epochs", "4", "--window", "2", "--train-epochs", "2",
                             "--batch-size", "64", "--quiet", *extra)]


def test_bench_smoke_outputs_table_resume(tiny_idx_dir, tmp_path, capsys):
    out = tmp_path / "bench"
    args = bench_args(tiny_idx_dir, out, "--label-noise", "0.2", "--ood-dataset", "digits")
    assert main(args) == 0
    # full, dyn-unc, random, and the matched-compute baseline at cost 1 - 0.25
    assert "4 of 4 training cells finished" in capsys.readouterr().out
    for name in (*OUTPUTS, "bench.json", "score/small-cnn/dynamics/meta.json",
                 "keep/small-cnn/dyn-unc-r0.25.txt", "keep/small-cnn/random-r0.25.json",
                 "keep/small-cnn/dyn-unc.scores.npy", "noise/is_noisy.npy"):
        assert (out / name).exists(), name

    rows = [r for r in csv.DictReader((out / "results.csv").open()) if r["kind"] != "baseline"]
    assert [r["method"] for r in rows] == ["full", "dyn-unc", "random"]
    assert set(FIELDS) <= set(rows[0])
    full, dyn = rows[0], rows[1]
    assert full["prune_ratio"] == "0.0" and full["train_samples"] == "300" and full["noisy_removed_share"] == ""
    assert dyn["train_samples"] == "225" and dyn["score_model"] == "small-cnn" and dyn["train_model"] == "mlp"
    assert float(dyn["label_noise"]) == 0.2 and 0 <= float(dyn["test_accuracy"]) <= 1
    assert 0 <= float(dyn["ood_aupr"]) <= 1 and 0 <= float(dyn["noisy_removed_share"]) <= 1
    # the share is what the keep file and the noise mask say
    keep = np.loadtxt(out / "keep/small-cnn/dyn-unc-r0.25.txt", dtype=np.int64)
    noisy = np.load(out / "noise/is_noisy.npy")
    removed = np.setdiff1d(np.arange(300), keep)
    assert float(dyn["noisy_removed_share"]) == pytest.approx(noisy[removed].mean())
    assert noisy.sum() == 60

    results = json.loads((out / "results.json").read_text())
    assert results["cells_finished"] == results["cells_planned"] == 4 and len(results["rows"]) == 4
    # the baseline: all 300 samples for round(0.75 x 2 epochs x 5 steps) = 8 steps; Δ paired by seed
    base = next(r for r in results["rows"] if r["kind"] == "baseline")
    assert base["compute_budget"] == base["cost"] == 0.75 and base["optimizer_steps"] == 8
    assert base["train_samples"] == 300 and base["sample_passes"] == 300 + 3 * 64  # an epoch, then 3 of 5 batches
    assert (out / "runs/baseline/B0.75/mlp-seed0/metrics.json").exists()
    dyn_row = next(r for r in results["rows"] if r["method"] == "dyn-unc")
    assert dyn_row["cost"] == 0.75
    assert dyn_row["delta_vs_baseline"] == pytest.approx(dyn_row["test_accuracy"] - base["test_accuracy"])

    tables = parse_table_md((out / "table.md").read_text())
    main_table = tables[0]
    assert main_table[0] == ["Method \\ Pruning ratio", "25%", "rank", "avg rank"]
    body = {r[0]: r[1:] for r in main_table[1:]}
    assert set(body) - {"All data, cost 1 − r (matched compute)"} == {"dyn-unc", "random", "No pruning"}
    for lab in ("dyn-unc", "random"):
        acc = float(body[lab][0].strip("*"))
        assert acc == pytest.approx(100 * float(next(r for r in rows if r["method"] == lab)["test_accuracy"]), abs=0.006)
        assert body[lab][1].strip("*") in ("1", "1.5", "2")
    assert any("Share of noisy" in t for t in (out / "table.md").read_text().splitlines())
    assert any(t[0][0] == "Pruning ratio" for t in tables)  # the OOD table

    # resume: nothing is retrained, outputs are regenerated; a baseline cell whose JSON is lost
    # comes back from its finished run folder without training again
    stamp = (out / "cells/full/mlp-seed0.json").stat().st_mtime_ns
    run_stamp = (out / "runs/baseline/B0.75/mlp-seed0/metrics.json").stat().st_mtime_ns
    (out / "cells/baseline/B0.75/mlp-seed0.json").unlink()
    assert main(args) == 0
    assert (out / "cells/full/mlp-seed0.json").stat().st_mtime_ns == stamp
    assert (out / "runs/baseline/B0.75/mlp-seed0/metrics.json").stat().st_mtime_ns == run_stamp
    assert json.loads((out / "cells/baseline/B0.75/mlp-seed0.json").read_text())["metrics"]["optimizer_steps"] == 8
    # a conflicting configuration is refused without --force
    assert main(bench_args(tiny_idx_dir, out, "--label-noise", "0.1", "--ood-dataset", "digits")) == 2
    assert "another configuration" in capsys.readouterr().err
    # report only, after deleting a cell: the report shows what has finished
    (out / "cells/small-cnn/random/r0.25/mlp-seed0.json").unlink()
    assert main(["bench", "--report-only", "--out", str(out), "--quiet"]) == 0
    assert "3 of 4 training cells finished" in capsys.readouterr().out


def test_interrupted_bench_reruns_only_what_is_missing(tiny_idx_dir, tmp_path, capsys):
    out = tmp_path / "b"
    args = bench_args(tiny_idx_dir, out, "--score-model", "mlp", "--prune-ratios", "0.25,0.5", "--no-baseline")
    assert main([*args, "--max-cells", "2"]) == 0
    assert "2 of 5 training cells finished" in capsys.readouterr().out
    done = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*seed0.json")}
    assert len(done) == 2
    # a stale cell (its key no longer matches) is recomputed too
    stale = out / "cells/full/mlp-seed0.json"
    cell = json.loads(stale.read_text())
    cell["key"]["train_epochs"] = 99
    stale.write_text(json.dumps(cell))
    assert main(args) == 0
    assert "5 of 5 training cells finished" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == t for p, t in done.items() if p != stale)
    assert json.loads(stale.read_text())["key"]["train_epochs"] == 2
    # extending the bench with a seed keeps the old cells and adds the new ones
    assert main([*args, "--seeds", "0,1", "--methods", "dyn-unc"]) == 0
    assert "8 of 10 training cells finished" in capsys.readouterr().out


def test_iteration_budget_and_configs(tiny_idx_dir, tmp_path):
    config = main_config(score_models=["mlp"], methods_="dyn-unc", window=2, score_epochs=3,
                         dataset="idx", data_dir=str(tiny_idx_dir), train_models=["mlp"], seeds=[0],
                         subset_budget="iterations", train_epochs=4, batch_size=64, prune_ratios=[0.5])
    bench = Bench(tmp_path / "x", config)
    assert bench.epochs_for(300) == 4                       # 5 steps/epoch: 20 steps
    assert bench.epochs_for(150) == 7                       # 3 steps/epoch: round(20 / 3)
    assert bench.epochs_for(10) == 20
    cfg = cost_config(model="small-cnn", proxy="mlp", score_epochs=30, windows=(5, 10, 20), short_epochs=(10, 20))
    cfg.validate()
    assert [s.id for s in cfg.scorers] == ["small-cnn-K30-clean", "small-cnn-K30-train", "small-cnn-K10-clean",
                                           "small-cnn-K20-clean", "mlp-K30-clean"]
    windows = {(s.scorer, dict(s.params).get("window")) for s in cfg.selectors}
    assert ("small-cnn-K10-clean", 5) in windows and ("small-cnn-K30-clean", 20) in windows
    multi = main_config(score_models=["small-cnn"], methods_="all", score_runs=3)
    assert any(s.label == "dyn-unc (1 run)" and s.runs == (0,) for s in multi.selectors)
    assert multi.selectors[0].label == "random" and dict(next(
        s for s in multi.selectors if s.label == "dyn-unc").params) == {"window": 10}
    cells = list(multi.train_cells())
    assert cells[0] == TrainCell(None, 0.0, "small-cnn", 0)
    assert [c.seed for c in cells] == sorted(c.seed for c in cells)   # seed-major
    roundtrip = BenchConfig.from_json(multi.to_json())
    assert roundtrip.selectors == multi.selectors and roundtrip.scorers == multi.scorers


@pytest.mark.parametrize("args,message", [
    (["--methods", "nope"], "unknown method 'nope'"),
    (["--prune-ratios", "1.0"], "prune_ratio=1.0"),
    (["--train-models", "resnet9000"], "unknown model"),
    (["--method-param", "dyn-unc.nope=3"], "takes"),
    (["--ood-dataset", "imagenet-o"], "unknown OOD dataset"),
    (["--label-noise", "1.5"], "--label-noise"),
])
def test_bench_errors_are_one_line(args, message, tiny_idx_dir, tmp_path, capsys):
    assert main(bench_args(tiny_idx_dir, tmp_path / "e", *args)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_adding_baseline_cells_needs_no_scoring_run(tiny_idx_dir, tmp_path, capsys):
    # committed results keep their keep files and cells but not the scoring runs' stores:
    # adding the matched-compute baseline to such a folder must not redo the scoring run
    import shutil
    out = tmp_path / "b"
    args = bench_args(tiny_idx_dir, out)
    assert main([*args, "--no-baseline"]) == 0
    assert "3 of 3 training cells finished" in capsys.readouterr().out
    shutil.rmtree(out / "score")
    assert main(args) == 0
    assert "4 of 4 training cells finished" in capsys.readouterr().out
    assert not (out / "score").exists()
    # a missing keep file still needs the scores: the scoring run comes back
    for p in (out / "keep").rglob("random-r0.25.*"):
        p.unlink()
    assert main(args) == 0
    assert (out / "score/small-cnn/dynamics/meta.json").exists()
