"""`dataprune bench` selection variants (METHOD+beta, METHOD+ccs) and the dual method."""
import numpy as np
import pytest

import dataprune as dp
from dataprune.bench import main_config
from dataprune.bench.selection import ccs_beta, parse_spec
from dataprune.cli import main
from dataprune.methods.dual import mean_prob


def test_parse_spec_and_ccs_beta():
    assert parse_spec("dyn-unc") == ("dyn-unc", ())
    assert parse_spec("dual+beta")[0] == "dual" and dict(parse_spec("dual+beta")[1])["rule"] == "beta"
    assert dict(parse_spec("aum+ccs")[1]) == {"rule": "ccs", "beta": "ccs-paper", "strata": 50, "seed": 0}
    with pytest.raises(ValueError, match="unknown selection variant 'x'"):
        parse_spec("aum+x")
    # the CCS paper's CIFAR-10 hard-cutoff rates: 0 / 0 / 10 / 10 / 30 % at 30 / 50 / 70 / 80 / 90 %
    assert [ccs_beta(r) for r in (0.3, 0.5, 0.7, 0.8, 0.9)] == [0.0, 0.0, 0.1, 0.1, 0.3]


def test_config_keys_of_plain_methods_are_unchanged():
    cfg = main_config(score_models=["mlp"], methods_="dyn-unc,dual,dual+beta", window=3, score_epochs=4)
    sels = {s.label: s for s in cfg.selectors}
    assert "selection" not in cfg.keep_key(sels["dyn-unc"], 0.5)      # old folders stay valid
    assert cfg.keep_key(sels["dual+beta"], 0.5)["selection"]["rule"] == "beta"
    assert sels["dual"].param_dict() == {"window": 3} == sels["dual+beta"].param_dict()
    with pytest.raises(ValueError, match="Beta sampling is not class-balanced"):
        main_config(score_models=["mlp"], methods_="dual+beta", class_balanced=True).validate()


def test_bench_runs_the_variants(tiny_idx_dir, tmp_path, capsys):
    out = tmp_path / "bench"
    args = [str(a) for a in ("bench", "--dataset", "idx", "--data-dir", tiny_idx_dir, "--out", out,
                             "--score-model", "mlp", "--train-models", "mlp", "--methods",
                             "dual,dual+beta,aum+ccs", "--prune-ratios", "0.7,0.9", "--seeds", "1",
                             "--score-epochs", "4", "--window", "2", "--train-epochs", "1",
                             "--batch-size", "64", "--quiet", "--no-full", "--no-baseline")]
    assert main(args) == 0
    assert "6 of 6 training cells finished" in capsys.readouterr().out
    dyn = dp.Dynamics.open(out / "score/mlp")
    dual = dp.score("dual", dyn, window=2)
    for r in (0.7, 0.9):
        beta = np.loadtxt(out / f"keep/mlp/dual+beta-r{r:g}.txt", dtype=np.int64)
        assert beta.tolist() == dp.select_beta(dual, mean_prob(dyn["prob"]), r, seed=0).tolist()
        ccs = np.loadtxt(out / f"keep/mlp/aum+ccs-r{r:g}.txt", dtype=np.int64)
        assert ccs.tolist() == dp.select_stratified(dp.score("aum", dyn), r, beta=ccs_beta(r),
                                                    difficulty=dp.difficulty("aum", dyn),
                                                    strata=50, seed=0).tolist()
        top = np.loadtxt(out / f"keep/mlp/dual-r{r:g}.txt", dtype=np.int64)
        assert top.tolist() == dp.select(dual, r).tolist()
    table = (out / "table.md").read_text()
    assert "| dual+beta |" in table and "| aum+ccs |" in table
    assert main(args) == 0                                     # resumes: nothing left to do
    assert "6 of 6 training cells finished" in capsys.readouterr().out
