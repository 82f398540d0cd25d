"""Reference tests of the methods reading final-model outputs: entropy, moderate, ssp,
and of run_outputs (save/load of features.npy and final_logits.npy)."""
import math

import numpy as np
import pytest

import dataprune as dp
from dataprune.methods.entropy import predictive_entropy
from dataprune.methods.moderate import class_median_distances, middle_band_scores
from dataprune.methods import ssp
from dataprune.methods.ssp import kmeans, lloyd_kmeans, prototype_distances
from helpers_methods import write_store


def run_with_outputs(tmp_path, n=30, c=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    dyn = write_store(tmp_path / "run" / "dynamics", {"prob": rng.random((3, n)).astype(np.float16)},
                      labels, c)
    logits = rng.standard_normal((n, c)).astype(np.float32) * 3
    feats = rng.standard_normal((n, d))
    dp.save_final_outputs(tmp_path / "run", logits, feats)
    return dyn, logits, feats.astype(np.float16)


# ---------------------------------------------------------------- run_outputs
def test_save_and_load_final_outputs(tmp_path):
    dyn, logits, feats = run_with_outputs(tmp_path)
    for where in (dyn, tmp_path / "run", tmp_path / "run" / "dynamics", str(tmp_path / "run")):
        np.testing.assert_array_equal(dp.load_features(where), feats)
        np.testing.assert_array_equal(dp.load_final_logits(where), logits)
    assert dp.load_features(dyn).dtype == np.float16 and dp.load_final_logits(dyn).dtype == np.float32
    with pytest.raises(ValueError, match="already exists"):
        dp.save_final_outputs(tmp_path / "run", logits, feats)
    dp.save_final_outputs(tmp_path / "run", logits * 2, feats, force=True)
    np.testing.assert_array_equal(dp.load_final_logits(dyn), logits * 2)
    other = tmp_path / "f.npy"
    np.save(other, np.ones((30, 2)))
    np.testing.assert_array_equal(dp.load_features(dyn, str(other)), np.ones((30, 2)))
    np.save(other, np.ones((29, 2)))
    with pytest.raises(ValueError, match="29 rows; expected one per training sample"):
        dp.load_features(dyn, other)


def test_missing_outputs_name_file_and_command(tmp_path):
    dyn = write_store(tmp_path / "run" / "dynamics", {"prob": np.zeros((3, 5), np.float16)},
                      np.zeros(5, int), 2)
    with pytest.raises(ValueError, match=r"features\.npy not found.*dataprune record.*pass features=FILE\.npy"):
        dp.score("moderate", dyn)
    with pytest.raises(ValueError, match=r"final_logits\.npy not found.*dataprune record.*pass logits=FILE\.npy"):
        dp.score("entropy", dyn)


def test_save_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        dp.save_final_outputs(tmp_path, np.zeros((3, 2)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="expected"):
        dp.save_final_outputs(tmp_path, np.zeros(3), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="float16 range"):
        dp.save_final_outputs(tmp_path, np.zeros((3, 2)), np.full((3, 5), 1e6))


# ---------------------------------------------------------------- entropy
def test_entropy_matches_reference(tmp_path):
    dyn, logits, _ = run_with_outputs(tmp_path)
    ref = []
    for row in logits.astype(float):
        p = [math.exp(v) for v in row]
        z = sum(p)
        ref.append(-sum(q / z * math.log(q / z) for q in p))
    np.testing.assert_allclose(dp.score("entropy", dyn), ref, rtol=1e-6)
    # hand case: uniform over 4 classes -> log 4; one-hot-ish -> ~0; NaN row -> NaN
    got = predictive_entropy(np.array([[0.0, 0, 0, 0], [100.0, 0, 0, 0], [np.nan, 0, 0, 0]]))
    np.testing.assert_allclose(got[:2], [math.log(4), 0.0], atol=1e-12)
    assert np.isnan(got[2])


# ---------------------------------------------------------------- moderate
def moderate_reference(feats, labels):
    n = len(labels)
    dist = np.empty(n)
    for i in range(n):
        members = np.array([feats[j] for j in range(n) if labels[j] == labels[i]], dtype=float)
        med = [sorted(members[:, k])[len(members) // 2] if len(members) % 2 else
               (sorted(members[:, k])[len(members) // 2 - 1] + sorted(members[:, k])[len(members) // 2]) / 2
               for k in range(members.shape[1])]
        dist[i] = math.sqrt(sum((float(feats[i][k]) - med[k]) ** 2 for k in range(len(med))))
    return dist


def test_moderate_matches_reference(tmp_path):
    dyn, _, feats = run_with_outputs(tmp_path, n=41, c=3, d=5)
    dist = moderate_reference(feats, dyn.labels)
    np.testing.assert_allclose(class_median_distances(feats, dyn.labels), dist, rtol=1e-12)
    s = dp.score("moderate", dyn)
    # Xia et al.'s rule: keep the sorted positions [round(N*low), round(N*high)) of the band
    order = np.argsort(dist, kind="stable")
    for keep_frac in (0.2, 0.5, 0.8):
        lo, hi = round(41 * (0.5 - keep_frac / 2)), round(41 * (0.5 + keep_frac / 2))
        band = set(order[lo:hi].tolist())
        kept = set(dp.select(s, 1 - (hi - lo) / 41).tolist())
        assert kept == band  # N=41: every band here is symmetric about position 20


def test_moderate_hand_case():
    # class 0 features 0, 1, 2, 10 (1-D): median 1.5 -> distances 1.5 .5 .5 8.5; class 1 (5) -> 0
    feats = np.array([[0.0], [1.0], [2.0], [10.0], [5.0], [7.0]])
    labels = np.array([0, 0, 0, 0, 1, -1])
    d = class_median_distances(feats, labels)
    np.testing.assert_allclose(d, [1.5, 0.5, 0.5, 8.5, 0.0, np.nan])
    # ranks of 0, .5, .5, 1.5, 8.5 -> 0, 1.5, 1.5, 3, 4; centre 2 -> scores -|r-2|/6
    np.testing.assert_allclose(middle_band_scores(d), [-1 / 6, -0.5 / 6, -0.5 / 6, -2 / 6, -2 / 6, np.nan])


# ---------------------------------------------------------------- ssp (k-means)
def lloyd_reference(x, centroids, iterations, spherical):
    """Plain Lloyd iterations in Python loops from given centroids."""
    x = np.array(x, dtype=float)
    if spherical:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = np.array(centroids, dtype=float)
    for _ in range(iterations):
        assign = []
        for row in x:
            if spherical:
                assign.append(max(range(len(c)), key=lambda j: (float(row @ c[j]), -j)))
            else:
                assign.append(min(range(len(c)), key=lambda j: (float(((row - c[j]) ** 2).sum()), j)))
        for j in range(len(c)):
            members = [x[i] for i in range(len(x)) if assign[i] == j]
            if members:
                m = np.mean(members, axis=0)
                c[j] = m / np.linalg.norm(m) if spherical else m
    return c


@pytest.mark.parametrize("spherical", [True, False])
def test_kmeans_lloyd_matches_reference(spherical):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 3)) + np.repeat(np.eye(3) * 4, 20, axis=0)
    init = x[[0, 20, 40]] / (np.linalg.norm(x[[0, 20, 40]], axis=1, keepdims=True) if spherical else 1)
    got, _ = lloyd_kmeans(x, 3, iterations=4, spherical=spherical, init=init)
    np.testing.assert_allclose(got, lloyd_reference(x, init, 4, spherical), rtol=1e-10, atol=1e-12)


def _blobs(seed: int = 4) -> np.ndarray:
    """Three well-separated blobs of 40 rows in 5-D (an easy partition), rows shuffled."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.eye(5)[:3] + 1.0
    x = np.repeat(centres, 40, axis=0) + 0.5 * rng.standard_normal((120, 5))
    return x[rng.permutation(120)]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two assignments group the rows alike (cluster numbers may differ)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("spherical", [True, False])
def test_sklearn_kmeans_and_the_numpy_fallback_find_the_same_partition(spherical):
    pytest.importorskip("sklearn")
    x = _blobs()
    x[7] = np.nan  # a non-finite row: -1 in both
    cents, assign = kmeans(x, 3, seed=0, spherical=spherical)            # scikit-learn
    ref_cents, ref_assign = lloyd_kmeans(x, 3, seed=0, spherical=spherical)
    assert assign[7] == ref_assign[7] == -1 and sorted(np.bincount(assign[assign >= 0])) == [39, 40, 40]
    assert _same_partition(assign, ref_assign)
    match = {a: r for a, r in zip(assign.tolist(), ref_assign.tolist()) if a >= 0}
    np.testing.assert_allclose(cents[list(match)], ref_cents[list(match.values())], rtol=1e-9, atol=1e-12)
    if spherical:
        np.testing.assert_allclose(np.linalg.norm(cents, axis=1), 1.0, rtol=1e-12)


def test_kmeans_falls_back_to_numpy_without_sklearn_or_memory(monkeypatch):
    x = _blobs()
    ref = lloyd_kmeans(x, 3, seed=1)
    for patch in (("_sklearn_kmeans", lambda: None), ("SKLEARN_MAX_BYTES", 0)):
        with monkeypatch.context() as m:
            m.setattr(ssp, *patch)
            got = kmeans(x, 3, seed=1)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ssp_distance_to_nearest_centroid(metric):
    rng = np.random.default_rng(2)
    centres = np.array([[10.0, 0, 0], [0, 10, 0], [0, 0, 10]])
    x = np.repeat(centres, 30, axis=0) + rng.standard_normal((90, 3))
    x[0] = [4.0, 4.0, 4.0]  # between the blobs: farthest from every prototype
    s = prototype_distances(x, 3, seed=0, metric=metric)
    assert np.argmax(s) == 0
    cents, assign = kmeans(x, 3, seed=0, spherical=metric == "cosine")
    assert sorted(np.bincount(assign[1:]).tolist()) == [29, 30, 30]  # recovers the blobs
    # score = brute-force distance to the nearest returned centroid
    xn = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    ref = [min((1 - float(r @ c)) if metric == "cosine" else float(np.linalg.norm(r - c))
               for c in cents) for r in xn]
    np.testing.assert_allclose(s, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(s, prototype_distances(x, 3, seed=0, metric=metric))  # seeded


def test_ssp_registry_defaults_and_errors(tmp_path):
    dyn, _, feats = run_with_outputs(tmp_path, n=30, c=3, d=4)
    s = dp.score("ssp", dyn)  # num_clusters 0 -> 3 classes, RUN/features.npy
    np.testing.assert_array_equal(s, prototype_distances(feats, 3))
    assert s.shape == (30,) and np.all(s >= 0)
    with pytest.raises(ValueError, match="num_clusters=31"):
        dp.score("ssp", dyn, num_clusters=31)
    with pytest.raises(ValueError, match="metric"):
        dp.score("ssp", dyn, metric="l1")
    x = feats.astype(float)
    x[4] = np.nan
    s = prototype_distances(x, 2)
    assert np.isnan(s[4]) and np.isfinite(np.delete(s, 4)).all()
