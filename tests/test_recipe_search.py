"""The research script benchmarks/recipe_search.py: its selection rule, schedule and costs."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataprune.train.loop import TrainConfig, make_optimizer

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_search.py"
_spec = importlib.util.spec_from_file_location("recipe_search", _PATH)
rs = importlib.util.module_from_spec(_spec)
sys.modules["recipe_search"] = rs
_spec.loader.exec_module(rs)


def _two_sided_slow(easy, p_label, ratio, beta):
    """Obvious loop: drop the lowest p_label one by one, then the lowest easy score."""
    n = len(p_label)
    n_drop = int(np.floor(ratio * n + 0.5))
    n_sus = min(n_drop, int(np.floor(min(beta, ratio) * n + 0.5)))
    alive = list(range(n))
    suspects = []
    for _ in range(n_sus):
        i = min(alive, key=lambda j: (p_label[j], j))
        alive.remove(i)
        suspects.append(i)
    for _ in range(n_drop - n_sus):
        alive.remove(min(alive, key=lambda j: (-np.inf if np.isnan(easy[j]) else easy[j], j)))
    return np.array(sorted(alive)), np.array(sorted(suspects), dtype=np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_two_sided_keep_matches_slow_loop(seed):
    rng = np.random.default_rng(seed)
    n = 40
    easy = rng.normal(size=n)
    easy[rng.choice(n, 3, replace=False)] = np.nan  # unknown scores go first on the easy side
    p_label = rng.integers(0, 5, size=n) / 4         # ties, broken by index
    ratio, beta = rng.uniform(0.05, 0.9), rng.uniform(0, 1)
    keep, sus = rs.two_sided_keep(easy, p_label, ratio, beta)
    keep_slow, sus_slow = _two_sided_slow(easy, p_label, ratio, beta)
    np.testing.assert_array_equal(keep, keep_slow)
    np.testing.assert_array_equal(sus, sus_slow)


def test_two_sided_keep_hand_case():
    # N=6, r=0.5 -> drop 3; beta=0.34 -> 2 suspects: the lowest p (samples 2, 4); then the
    # easiest of the rest: sample 5 (score 0.5). Kept: 0, 1, 3.
    keep, sus = rs.two_sided_keep(np.array([5., 1, 2, 3, 4, 0.5]), np.array([.9, .9, .01, .9, .02, .9]), 0.5, 0.34)
    assert keep.tolist() == [0, 1, 3] and sus.tolist() == [2, 4]


def test_step_schedule_equals_the_full_runs_per_step_schedule():
    """Over E x B steps with one epoch of warm-up it is make_optimizer's schedule, step for step."""
    cfg, per_epoch = TrainConfig(epochs=3), 7
    ref_opt, ref = make_optimizer(torch.nn.Linear(2, 2), cfg, per_epoch)
    opt, _ = make_optimizer(torch.nn.Linear(2, 2), cfg, per_epoch)
    mine = rs.step_schedule(opt, cfg.epochs * per_epoch, per_epoch)
    for _ in range(cfg.epochs * per_epoch):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
        ref_opt.step(), opt.step(), ref.step(), mine.step()


def test_recipe_ratio_hits_the_cost():
    r = rs.Recipe.parse("el2n-T3-ann2")
    ratio = r.prune_ratio(15)
    assert (3 + 2 + 10 * (1 - ratio)) / 15 == pytest.approx(0.75)
    assert rs.Recipe.parse("el2n-T3-twoauto-steps").prune_ratio(15) == 0.0
    with pytest.raises(SystemExit, match="prune ratio"):
        rs.Recipe.parse("el2n-T14-c0.5").prune_ratio(15)
