"""Two-sided pruning (dataprune.mislabeled): reference loops and hand cases."""
from __future__ import annotations

import numpy as np
import pytest

import dataprune as dp
from dataprune.mislabeled import estimate_noise_rate, label_evidence, select_two_sided, suspect_share


def slow_evidence(prob: np.ndarray) -> np.ndarray:
    k, n = prob.shape
    out = np.full(n, np.nan)
    for i in range(n):
        vals = [prob[e, i] for e in range(1 if k > 1 else 0, k) if not np.isnan(prob[e, i])]
        if vals:
            out[i] = sum(vals) / len(vals)
    return out


def slow_two_sided(scores, evidence, r, beta):
    n = len(scores)
    drop = int(np.floor(max(r, beta) * n + 0.5))
    n_sus = min(drop, int(np.floor(beta * n + 0.5)))
    left = list(range(n))
    suspects = []
    for _ in range(n_sus):  # lowest evidence first, ties by index, NaN never
        best = min((i for i in left if not np.isnan(evidence[i])), key=lambda i: (evidence[i], i))
        suspects.append(best)
        left.remove(best)
    for _ in range(drop - n_sus):  # then the lowest score (NaN lowest); ties: any
        worst = min(left, key=lambda i: -np.inf if np.isnan(scores[i]) else scores[i])
        left.remove(worst)
    return sorted(left), sorted(suspects)


def test_label_evidence_matches_a_loop_with_nans():
    rng = np.random.default_rng(0)
    for k in (1, 2, 5):
        prob = rng.random((k, 40))
        prob[rng.random((k, 40)) < 0.2] = np.nan
        np.testing.assert_allclose(label_evidence(prob), slow_evidence(prob), equal_nan=True)


def test_two_sided_matches_a_loop_on_distinct_scores():
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(5, 60))
        scores = rng.permutation(n).astype(float)  # distinct: no tie-breaking freedom but NaN
        scores[rng.random(n) < 0.1] = np.nan
        evidence = rng.random(n)
        evidence[rng.random(n) < 0.1] = np.nan
        r, beta = float(rng.uniform(0, 0.8)), float(rng.uniform(0, 0.8))
        if int(np.floor(max(r, beta) * n + 0.5)) >= n or np.isnan(evidence).sum() > n - int(np.floor(beta * n + 0.5)):
            continue
        keep, suspects = select_two_sided(scores, evidence, r, beta)
        want_keep, want_sus = slow_two_sided(scores, evidence, r, beta)
        assert suspects.tolist() == want_sus, (trial, r, beta)
        # NaN scores tie (pruned first, in seeded order): compare the scored samples kept, and
        # how many unscored ones
        scored = ~np.isnan(scores)
        assert [i for i in keep.tolist() if scored[i]] == [i for i in want_keep if scored[i]], (trial, r, beta)
        assert len(keep) == len(want_keep)


def test_hand_case():
    # 6 samples; evidence p(label) 0.9 0.05 0.8 0.02 0.7 0.6, el2n-like scores 5 1 4 6 2 3
    # r = 0.5 -> drop 3; beta = 1/3 -> the 2 suspects are samples 3 (0.02) and 1 (0.05);
    # then the lowest score of {0, 2, 4, 5} (scores 5 4 2 3) is sample 4: kept 0, 2, 5.
    keep, suspects = select_two_sided(np.array([5, 1, 4, 6, 2, 3.0]), np.array([.9, .05, .8, .02, .7, .6]),
                                      0.5, 1 / 3)
    assert keep.tolist() == [0, 2, 5] and suspects.tolist() == [1, 3]
    # suspect_ratio 0 is plain select
    keep0, none = select_two_sided(np.array([5, 1, 4, 6, 2, 3.0]), np.zeros(6), 0.5, 0.0)
    assert keep0.tolist() == dp.select(np.array([5, 1, 4, 6, 2, 3.0]), 0.5).tolist() and none.size == 0


def test_noise_rate_and_gate():
    # C = 10: chance is 0.1; 3 of 8 below it (0.05, 0.0, 0.09), NaN not counted
    ev = np.array([0.05, 0.5, 0.0, 0.09, 0.1, 0.9, np.nan, 0.3])
    assert estimate_noise_rate(ev, 10) == pytest.approx(3 / 8)
    assert suspect_share(0.375) == 0.375 and suspect_share(0.05) == 0.0 and suspect_share(0.375, "off") == 0.0
    assert suspect_share(0.375, "auto", recordings=1) == 0.0  # one recording: an untrained model
    with pytest.raises(dp.DataPruneError, match="mislabeled='maybe'; expected one of auto, off"):
        suspect_share(0.2, "maybe")
    with pytest.raises(dp.DataPruneError, match="num_classes=1"):
        estimate_noise_rate(ev, 1)


@pytest.mark.timeout(300)
def test_prune_at_drops_flipped_labels_first_on_noisy_data(tmp_path):
    """`train --prune-at` (default --drop-mislabeled auto) on data with 30 % flipped labels:
    the estimate sees the noise and most of the samples it drops as suspects are flipped; on
    the clean labels it stays one-sided."""
    import json
    from conftest import make_images, write_idx
    from dataprune.cli import main
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 10
    rng.shuffle(labels)
    images = make_images(labels, rng)
    flipped = rng.random(600) < 0.3
    noisy = np.where(flipped, (labels + rng.integers(1, 10, 600)) % 10, labels)
    for name, train_labels in (("noisy", noisy), ("clean", labels)):
        d = tmp_path / name
        d.mkdir()
        write_idx(d / "train-images-idx3-ubyte", images)
        write_idx(d / "train-labels-idx1-ubyte", train_labels)
        write_idx(d / "t10k-images-idx3-ubyte", images[:100])
        write_idx(d / "t10k-labels-idx1-ubyte", labels[:100])
        assert main(["train", "--dataset", "idx", "--data-dir", str(d), "--model", "mlp", "--epochs", "6",
                     "--batch-size", "32", "--prune-at", "--out", str(tmp_path / f"{name}.run"), "--quiet",
                     "--threads", "1"]) == 0
    noisy_keep = json.loads((tmp_path / "noisy.run" / "keep.json").read_text())
    clean_keep = json.loads((tmp_path / "clean.run" / "keep.json").read_text())
    assert noisy_keep["noise_rate_estimate"] >= 0.1 and noisy_keep["suspects_dropped"] > 0
    assert clean_keep["noise_rate_estimate"] < 0.1 and clean_keep["suspects_dropped"] == 0
    kept = np.loadtxt(tmp_path / "noisy.run" / "keep.txt", dtype=np.int64)
    assert flipped[kept].mean() < flipped.mean() / 2  # the kept set is far cleaner than the data
