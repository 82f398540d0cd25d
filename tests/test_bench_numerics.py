"""Reference tests for the benchmark's numerical pieces: AUPR, label noise, the noisy share
of removed samples, ranks and mean ± std (slow obvious loops vs the fast paths)."""
import math

import numpy as np
import pytest
import torch

from dataprune.bench.noise import noisy_removed_share, symmetric_label_noise
from dataprune.bench.ood import average_precision, load_ood, msp_aupr, resize_uint8
from dataprune.bench.stats import aggregate, best, mean_std, rank_table, ranks
from dataprune.bench.tables import parse_table_md
from dataprune.errors import DataPruneError


def slow_average_precision(pos, scores):
    """Precision/recall at each distinct threshold, from the highest down."""
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        predicted = [i for i in range(len(scores)) if scores[i] >= t]
        tp = sum(1 for i in predicted if pos[i])
        precision, recall = tp / len(predicted), tp / sum(pos)
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def test_average_precision_hand_case():
    # P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1 -> AP = 1/2 + 1/2 * 2/3
    assert average_precision(np.array([1, 0, 1], bool), np.array([0.9, 0.8, 0.7])) == pytest.approx(5 / 6)
    # one tie between a positive and a negative counts together: P = 1/2 at R = 1
    assert average_precision(np.array([1, 0], bool), np.array([0.5, 0.5])) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(12))
def test_average_precision_matches_loop_and_sklearn(seed):
    from sklearn.metrics import average_precision_score
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    pos = rng.random(n) < rng.uniform(0.1, 0.9)
    pos[rng.integers(n)] = True
    scores = rng.integers(0, 8, n).astype(float) if seed % 2 else rng.normal(size=n)  # ties on odd seeds
    ap = average_precision(pos, scores)
    assert ap == pytest.approx(slow_average_precision(pos, scores), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(pos, scores), abs=1e-12)


def test_msp_aupr_ood_is_positive():
    # OOD less confident than every in-distribution sample: perfect detector
    assert msp_aupr(np.array([0.99, 0.95, 0.9]), np.array([0.3, 0.5])) == pytest.approx(1.0)
    # OOD more confident than everything: the worst ordering, as the loop computes it
    worst = msp_aupr(np.array([0.2, 0.3, 0.4]), np.array([0.9, 0.95]))
    assert worst == pytest.approx(slow_average_precision(np.array([0, 0, 0, 1, 1], bool),
                                                         -np.array([0.2, 0.3, 0.4, 0.9, 0.95])))
    with pytest.raises(DataPruneError):
        average_precision(np.zeros(3, bool), np.zeros(3))


def slow_noise(labels, rate, c, seed):
    rng = np.random.default_rng(seed)
    m = int(math.floor(rate * len(labels) + 0.5))
    flip = rng.choice(len(labels), size=m, replace=False)
    offset = rng.integers(1, c, size=m)
    noisy = [int(x) for x in labels]
    for i, o in zip(flip, offset):
        new = noisy[i] + int(o)
        noisy[i] = new - c if new >= c else new
    return np.array(noisy)


@pytest.mark.parametrize("seed", range(6))
def test_symmetric_label_noise_matches_loop(seed):
    rng = np.random.default_rng(100 + seed)
    c = int(rng.integers(2, 12))
    labels = rng.integers(0, c, int(rng.integers(1, 200)))
    rate = float(rng.choice([0.0, 0.2, 0.5, 1.0, rng.random()]))
    noisy, mask = symmetric_label_noise(labels, rate, c, seed=seed)
    np.testing.assert_array_equal(noisy, slow_noise(labels, rate, c, seed))
    np.testing.assert_array_equal(mask, noisy != labels)              # every flip changes the class
    assert mask.sum() == int(math.floor(rate * len(labels) + 0.5))
    assert noisy.min() >= 0 and noisy.max() < c


def test_symmetric_label_noise_is_uniform_over_other_classes():
    labels = np.zeros(40000, dtype=np.int64)                          # every label 0, C = 5
    noisy, mask = symmetric_label_noise(labels, 0.5, 5, seed=1)
    counts = np.bincount(noisy[mask], minlength=5)
    assert counts[0] == 0
    assert np.all(np.abs(counts[1:] / mask.sum() - 0.25) < 0.01)
    # seeded: same seed same noise, another seed other noise; labels untouched
    np.testing.assert_array_equal(noisy, symmetric_label_noise(labels, 0.5, 5, seed=1)[0])
    assert not np.array_equal(mask, symmetric_label_noise(labels, 0.5, 5, seed=2)[1])
    assert labels.max() == 0
    for bad in (dict(rate=1.5), dict(rate=-0.1), dict(num_classes=1)):
        with pytest.raises(DataPruneError):
            symmetric_label_noise(labels, **{"rate": 0.1, "num_classes": 5, **bad})


@pytest.mark.parametrize("seed", range(8))
def test_noisy_removed_share_matches_loop(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 100))
    noisy = rng.random(n) < 0.3
    keep = np.sort(rng.choice(n, int(rng.integers(1, n)), replace=False))
    removed = [i for i in range(n) if i not in set(keep.tolist())]
    expected = sum(noisy[i] for i in removed) / len(removed)
    assert noisy_removed_share(keep, noisy) == pytest.approx(expected)
    # hand case: N=4, keep [0, 1], noisy [F, F, T, F] -> 1 of 2 removed is noisy
    assert noisy_removed_share(np.array([0, 1]), np.array([0, 0, 1, 0], bool)) == 0.5
    assert math.isnan(noisy_removed_share(np.arange(4), np.ones(4, bool)))


def slow_ranks(v):
    out = []
    for i, x in enumerate(v):
        if math.isnan(x):
            out.append(math.nan)
            continue
        better = sum(1 for y in v if not math.isnan(y) and y > x)
        equal = sum(1 for j, y in enumerate(v) if j != i and y == x)
        out.append(1 + better + equal / 2)
    return out


@pytest.mark.parametrize("seed", range(10))
def test_ranks_match_loop(seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 5, int(rng.integers(1, 15))).astype(float)
    v[rng.random(len(v)) < 0.2] = np.nan
    np.testing.assert_array_equal(ranks(v), np.array(slow_ranks(list(v))))
    np.testing.assert_array_equal(ranks(v, higher_is_better=False), np.array(slow_ranks(list(-v))))
    np.testing.assert_array_equal(ranks([90, 95, 90]), [2.5, 1, 2.5])   # hand case


def test_rank_table_and_best():
    means = {"a": {0.25: 0.9, 0.5: 0.8}, "b": {0.25: 0.95, 0.5: 0.7}, "c": {0.25: 0.8}}
    per, avg = rank_table(means, [0.25, 0.5])
    assert per == {"a": {0.25: 2, 0.5: 1}, "b": {0.25: 1, 0.5: 2}, "c": {0.25: 3}}
    assert avg == {"a": 1.5, "b": 1.5, "c": 3}
    assert best({"a": 1.0, "b": 2.0, "c": 2.0}) == {"b", "c"}
    assert best(avg, better=lambda x, y: x < y) == {"a", "b"}


@pytest.mark.parametrize("seed", range(6))
def test_mean_std_and_aggregate_match_loop(seed):
    rng = np.random.default_rng(seed)
    rows = [{"m": str(rng.integers(3)), "r": float(rng.choice([0.25, 0.5])), "acc": float(rng.random())}
            for _ in range(int(rng.integers(1, 30)))]
    got = aggregate(rows, ("m", "r"), "acc")
    for key, (m, s, n) in got.items():
        vals = [row["acc"] for row in rows if (row["m"], row["r"]) == key]
        mean = sum(vals) / len(vals)
        assert n == len(vals) and m == pytest.approx(mean)
        if n > 1:
            assert s == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in vals) / (n - 1)))
        else:
            assert math.isnan(s)
    assert mean_std([1, 2, 3]) == (2.0, 1.0, 3)                        # hand case
    assert mean_std([float("nan"), None, 4.0])[::2] == (4.0, 1)
    assert mean_std([])[2] == 0


def test_load_ood_digits_and_resize():
    x = load_ood("digits", size=28)
    assert x.dtype == torch.uint8 and x.shape == (1797, 1, 28, 28)
    assert int(x.max()) > 200 and int(x.min()) == 0
    # bilinear resize of a constant image stays constant; same size is the identity
    assert torch.all(resize_uint8(np.full((2, 8, 8), 100.0), 28) == 100)
    img = np.random.default_rng(0).integers(0, 256, (3, 28, 28))
    np.testing.assert_array_equal(resize_uint8(img, 28)[:, 0].numpy(), img)
    with pytest.raises(DataPruneError, match="unknown OOD dataset"):
        load_ood("imagenet-o")


def test_parse_table_md():
    text = "intro\n\n| a | b |\n| --- | ---: |\n| x | **1.00** |\n\nmore\n| c |\n| --- |\n| 2 |\n"
    assert parse_table_md(text) == [[["a", "b"], ["x", "**1.00**"]], [["c"], ["2"]]]


def test_eta_uses_each_models_measured_rate():
    from dataprune.bench.plan import TrainCell
    from dataprune.bench.engine import _eta
    cells = [TrainCell(None, 0.0, "a", 0), TrainCell(None, 0.0, "b", 0), TrainCell(None, 0.0, "c", 0)]
    units = {"a": 10.0, "b": 20.0, "c": 5.0}
    # a: 2 s per unit, b: 0.5 s per unit, c unseen -> the slowest seen rate (2)
    eta = _eta(cells, lambda c: units[c.train_model], {"a": [20.0, 10.0], "b": [5.0, 10.0]})
    assert eta == 10 * 2 + 20 * 0.5 + 5 * 2
    assert _eta(cells, lambda c: 1.0, {}) == 0.0


def test_main_table_shows_only_ratios_measured_for_each_train_model():
    # small-cnn trained at 25 % and 50 %, mlp only at 25 %: mlp's table has one ratio column
    # (no empty 50 % column dragging its average rank), small-cnn's has both.
    from dataprune.bench.studies import main_config
    from dataprune.bench.tables import main_tables
    cfg = main_config(score_models=["small-cnn"], methods_=["random", "dyn-unc"],
                      prune_ratios=[0.25, 0.5], train_models=["small-cnn", "mlp"], seeds=[0])
    rows = [dict(scorer="small-cnn", method=m, train_model=tm, prune_ratio=r, test_accuracy=a)
            for m, tm, r, a in [("random", "small-cnn", 0.25, 0.90), ("dyn-unc", "small-cnn", 0.25, 0.91),
                                ("random", "small-cnn", 0.5, 0.89), ("dyn-unc", "small-cnn", 0.5, 0.88),
                                ("random", "mlp", 0.25, 0.85), ("dyn-unc", "mlp", 0.25, 0.86)]]
    cnn, mlp = parse_table_md(main_tables(rows, cfg))
    assert cnn[0] == ["Method \\ Pruning ratio", "25%", "rank", "50%", "rank", "avg rank"]
    assert cnn[2] == ["dyn-unc", "**91.00**", "**1**", "88.00", "2", "**1.50**"]  # tied with random
    assert mlp[0] == ["Method \\ Pruning ratio", "25%", "rank", "avg rank"]
    assert mlp[2] == ["dyn-unc", "**86.00**", "**1**", "**1.00**"]


def test_cost_table_rows_and_relative_cost():
    # Hand case: full-set training takes 100 s and 120 s (mean 110 s); the K=30 clean run
    # took 330 s -> 3.00x full training; random needs no scoring run -> 0 s, 0.00x.
    from dataprune.bench.studies import cost_config
    from dataprune.bench.tables import cost_table
    cfg = cost_config(model="small-cnn", proxy="", windows=(10,), short_epochs=(), prune_ratios=[0.25],
                      train_models=["small-cnn"], seeds=[0, 1])
    ref = cfg.scorers[0].id
    rows = [dict(scorer="", method="full", train_model="small-cnn", prune_ratio=0.0, seed=s,
                 test_accuracy=a, train_seconds=t) for s, a, t in [(0, 0.92, 100.0), (1, 0.93, 120.0)]]
    rows += [dict(scorer=ref, method=lab, train_model="small-cnn", prune_ratio=0.25, seed=0,
                  test_accuracy=0.915, score_seconds=330.0, selection_seconds=0.02)
             for lab in ("random", f"dyn-unc J=10, {ref}")]
    (table,) = parse_table_md(cost_table(rows, cfg))
    header, rnd, dyn = table[0], table[1], table[2]
    col = {name: i for i, name in enumerate(header)}
    assert rnd[col["scoring s"]] == "0" and rnd[col["× full training"]] == "0.00" and rnd[col["K"]] == "–"
    assert dyn[col["scoring s"]] == "330" and dyn[col["× full training"]] == "3.00" and dyn[col["K"]] == "30"
    assert dyn[col["25%"]] == "91.50 (n=1)"
    assert table[-1][0] == "no pruning (reference)" and table[-1][col["25%"]] == "92.50 ± 0.71"


def test_baseline_row_and_delta_table_hand_case():
    # Two seeds. Full: 92, 93; all data at cost 0.75: 90, 91; dyn-unc at r = 0.25: 91.5, 90.5.
    # Paired Δ vs baseline: +1.5, -0.5 -> mean +0.50, std 1.41; Δ vs full: -0.5, -2.5 -> -1.50 ± 1.41.
    from dataprune.bench.stats import add_deltas
    from dataprune.bench.studies import main_config
    from dataprune.bench.tables import BASELINE_ROW, delta_tables, main_tables
    cfg = main_config(score_models=["small-cnn"], methods_=["dyn-unc"], prune_ratios=[0.25],
                      train_models=["small-cnn"], seeds=[0, 1], baseline_budgets=[0.75])

    def row(kind, method, seed, acc, cost, ratio=0.0, budget=""):
        return dict(kind=kind, method=method, scorer="small-cnn" if kind == "subset" else "", seed=seed,
                    train_model="small-cnn", train_epochs=10, prune_ratio=ratio, compute_budget=budget,
                    test_accuracy=acc, cost=cost, train_seconds=1.0, cpu_seconds="")
    rows = add_deltas([row("full", "full", s, a, 1.0) for s, a in ((0, 0.92), (1, 0.93))]
                      + [row("baseline", "baseline", s, a, 0.75, budget=0.75) for s, a in ((0, 0.90), (1, 0.91))]
                      + [row("subset", "dyn-unc", s, a, 0.75, ratio=0.25) for s, a in ((0, 0.915), (1, 0.905))])
    (main,) = parse_table_md(main_tables(rows, cfg))
    assert main[-1][:2] == [BASELINE_ROW, "90.50 ± 0.71"] and main[-2][:2] == ["No pruning", "92.50 ± 0.71"]
    (delta,) = parse_table_md(delta_tables(rows, cfg))
    assert delta[0] == ["Method \\ Pruning ratio", "25% vs baseline", "vs full"]
    assert delta[1] == ["dyn-unc", "+0.50 ± 1.41", "-1.50 ± 1.41"]
