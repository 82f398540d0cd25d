"""Self-supervised prototypes (Sorscher et al., "Beyond neural scaling laws: beating power law
scaling via data pruning", NeurIPS 2022).

k-means with ``num_clusters`` clusters (0 = the number of classes) on the embeddings; the
score of a sample is its distance to the nearest centroid (prototype): far = hard = keep
(the paper's choice when data is plentiful). ``metric="cosine"`` (default, as Sorscher et
al.) L2-normalises the embeddings, runs spherical k-means (assign by largest cosine,
centroid = normalised mean) and scores 1 - cosine; ``metric="euclidean"`` runs plain k-means
and scores the Euclidean distance.

k-means (deterministic for a seed): scikit-learn's ``KMeans`` where it is installed
(k-means++ seeding, one initialisation, at most ``iterations`` Lloyd steps, to convergence);
for ``metric="cosine"`` it clusters the normalised rows and the centroids are normalised
after. Without scikit-learn (an optional extra, ``dataprune[bench]``), or when the finite
rows would not fit in :data:`SKLEARN_MAX_BYTES` as float64, :func:`lloyd_kmeans` (NumPy):
k-means++ seeding on a seeded subsample of min(N, max(4096, 16k)) rows, then ``iterations``
Lloyd steps over all rows (stopping early when no assignment changes); an emptied cluster is
re-seeded with the row farthest from its centroid. It streams the rows in chunks from the
(memory-mapped) feature file, so memory is O(k D + chunk); time is O(iterations N k D).

Embeddings: ``--features FILE.npy`` (N, D), e.g. from a self-supervised model as in the
paper; by default ``RUN/features.npy`` (penultimate features of the final scoring model, a
supervised stand-in). Rows with non-finite values get NaN and are left out of k-means.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..errors import DataPruneError
from ..run_outputs import FEATURES_FILE, load_features
from ._common import CHUNK_ELEMENTS, check_int
from ._registry import register

METRICS = ("cosine", "euclidean")
#: scikit-learn's KMeans holds the finite rows in memory as float64: above this many bytes
#: the streamed :func:`lloyd_kmeans` runs instead
SKLEARN_MAX_BYTES = 2 << 30


def _chunks(x: np.ndarray, k: int, spherical: bool) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """(slice, float64 rows with non-finite rows zeroed (normalised if spherical), finite mask)."""
    n, d = x.shape
    step = max(1, CHUNK_ELEMENTS // max(d, k, 1))
    for a in range(0, n, step):
        sl = slice(a, min(a + step, n))
        rows = np.array(x[sl], dtype=np.float64)
        ok = np.isfinite(rows).all(1)
        if not ok.all():
            rows[~ok] = 0.0
        if spherical:
            norm = np.sqrt(np.einsum("ij,ij->i", rows, rows))
            rows /= np.where(norm > 0, norm, 1.0)[:, None]
        yield sl, rows, ok


def _nearest(rows: np.ndarray, centroids: np.ndarray, spherical: bool) -> tuple[np.ndarray, np.ndarray]:
    """(index of nearest centroid, distance to it): 1 - cosine, or Euclidean."""
    dots = rows @ centroids.T
    if spherical:
        j = np.argmax(dots, axis=1)
        return j, 1.0 - dots[np.arange(len(rows)), j]
    sq = (rows * rows).sum(1)[:, None] - 2.0 * dots + (centroids * centroids).sum(1)[None, :]
    j = np.argmin(sq, axis=1)
    return j, np.sqrt(np.maximum(sq[np.arange(len(rows)), j], 0.0))


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator, spherical: bool) -> np.ndarray:
    """k-means++ seeding (D^2 sampling) on a seeded subsample of the finite rows."""
    finite = np.concatenate([ok for _, _, ok in _chunks(x, k, False)])
    pool = np.flatnonzero(finite)
    m = min(len(pool), max(4096, 16 * k))
    pick = np.sort(rng.choice(pool, size=m, replace=False)) if m < len(pool) else pool
    s = np.asarray(x[pick], dtype=np.float64)
    if spherical:
        norm = np.linalg.norm(s, axis=1, keepdims=True)
        s = s / np.where(norm > 0, norm, 1.0)
    centroids = np.empty((k, s.shape[1]))
    centroids[0] = s[rng.integers(m)]
    d2 = ((s - centroids[0]) ** 2).sum(1)
    for j in range(1, k):
        total = d2.sum()
        i = rng.choice(m, p=d2 / total) if total > 0 else rng.integers(m)
        centroids[j] = s[i]
        d2 = np.minimum(d2, ((s - centroids[j]) ** 2).sum(1))
    return centroids


def _sklearn_kmeans() -> Any:
    """``sklearn.cluster.KMeans``, or None: scikit-learn is an optional extra, so the NumPy
    :func:`lloyd_kmeans` stays the fallback."""
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        return None
    return KMeans


def kmeans(x: np.ndarray, num_clusters: int, *, seed: int = 0, iterations: int = 30,
           spherical: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means over the rows of ``x`` (N, D): scikit-learn's ``KMeans`` where it is
    installed and the finite rows fit in :data:`SKLEARN_MAX_BYTES`, else :func:`lloyd_kmeans`.

    Returns ``(centroids (k, D) float64, assignment (N,) int64)``; rows with non-finite values
    are assigned -1. ``spherical``: cluster the L2-normalised rows, unit-norm centroids, and
    assign by the largest cosine.
    """
    n, d = x.shape
    k = check_int("num_clusters", num_clusters, 1)
    check_int("iterations", iterations, 0)
    check_int("seed", seed, 0)
    KMeans = _sklearn_kmeans()
    if KMeans is None or iterations == 0 or n * d * 8 > SKLEARN_MAX_BYTES:
        return lloyd_kmeans(x, k, seed=seed, iterations=iterations, spherical=spherical)
    rows = np.concatenate([r[ok] for _, r, ok in _chunks(x, k, spherical)])
    fit = KMeans(k, init="k-means++", n_init=1, max_iter=iterations, tol=0.0, algorithm="lloyd",
                 random_state=np.random.RandomState(np.random.MT19937(seed))).fit(rows)
    centroids = np.asarray(fit.cluster_centers_, dtype=np.float64)
    if spherical:
        norm = np.linalg.norm(centroids, axis=1, keepdims=True)
        centroids = centroids / np.where(norm > 0, norm, 1.0)
    assign = np.full(n, -1, dtype=np.int64)
    for sl, r, ok in _chunks(x, k, spherical):  # the nearest of the returned centroids
        assign[sl] = np.where(ok, _nearest(r, centroids, spherical)[0], -1)
    return centroids, assign


def lloyd_kmeans(x: np.ndarray, num_clusters: int, *, seed: int = 0, iterations: int = 30,
                 spherical: bool = True, init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means over the rows of ``x`` (N, D) in NumPy, streamed in chunks (see the
    module docstring); returns what :func:`kmeans` returns. ``init`` gives the starting
    centroids instead of k-means++ seeding.
    """
    n, d = x.shape
    k = check_int("num_clusters", num_clusters, 1)
    check_int("iterations", iterations, 0)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    centroids = _kmeans_pp(x, k, rng, spherical) if init is None else np.array(init, dtype=np.float64)
    if centroids.shape != (k, d):
        raise DataPruneError(f"init has shape {centroids.shape}; expected ({k}, {d})")
    assign = np.full(n, -1, dtype=np.int64)
    for it in range(iterations + 1):
        sums = np.zeros((k, d))
        counts = np.zeros(k, dtype=np.int64)
        far_d, far_i = np.full(n, -np.inf), np.arange(n)
        changed = False
        for sl, rows, ok in _chunks(x, k, spherical):
            j, dist = _nearest(rows, centroids, spherical)
            j = np.where(ok, j, -1)
            changed |= bool(np.any(assign[sl] != j))
            assign[sl] = j
            far_d[sl] = np.where(ok, dist, -np.inf)
            onehot = np.zeros((len(j), k))  # per-cluster row sums as one BLAS product
            onehot[np.flatnonzero(ok), j[ok]] = 1.0
            sums += onehot.T @ rows
            counts += np.bincount(j[ok], minlength=k)
        if it == iterations or (not changed and it > 0):
            break
        empty = np.flatnonzero(counts == 0)
        new = sums / np.maximum(counts, 1)[:, None]
        if len(empty):  # re-seed with the rows farthest from their centroids, distinct rows
            far = np.argsort(-far_d, kind="stable")[: len(empty)]
            for c, i in zip(empty, far):
                new[c] = next(r for _, r, _ in _chunks(x[i:i + 1], k, spherical))[0]
        if spherical:
            norm = np.linalg.norm(new, axis=1, keepdims=True)
            new = np.where(norm > 0, new / np.where(norm > 0, norm, 1.0), centroids)
        centroids = new
    return centroids, assign


def prototype_distances(x: np.ndarray, num_clusters: int, *, seed: int = 0, iterations: int = 30,
                        metric: str = "cosine") -> np.ndarray:
    """(N,) distance of each row to its nearest k-means centroid (NaN for non-finite rows)."""
    if metric not in METRICS:
        raise DataPruneError(f"metric={metric!r}; expected one of {METRICS}")
    spherical = metric == "cosine"
    if getattr(x, "ndim", None) != 2:
        raise DataPruneError(f"features have shape {getattr(x, 'shape', None)}; expected (N, D)")
    k = check_int("num_clusters", num_clusters, 1)
    finite = sum(int(ok.sum()) for _, _, ok in _chunks(x, k, False))
    if k > finite:
        raise DataPruneError(f"num_clusters={k} but only {finite} samples have finite features; "
                             f"expected num_clusters <= {finite}")
    centroids, _ = kmeans(x, k, seed=seed, iterations=iterations, spherical=spherical)
    out = np.full(x.shape[0], np.nan)
    for sl, rows, ok in _chunks(x, k, spherical):
        _, dist = _nearest(rows, centroids, spherical)
        out[sl] = np.where(ok, dist, np.nan)
    return out


@register("ssp", summary="self-supervised prototypes: distance to the nearest k-means centroid "
                         "(Sorscher et al. 2022); keeps far samples",
          files=(FEATURES_FILE,))
def ssp_scores(dynamics: Any, *, features: str | None = None, num_clusters: int = 0,
               seed: int = 0, iterations: int = 30, metric: str = "cosine") -> np.ndarray:
    """Self-supervised prototypes: the distance of each feature row to its nearest k-means centroid.

    Parameters
    ----------
    dynamics : Any
        A :class:`~dataprune.Dynamics` (its run directory holds ``features.npy``).
    features : str | None
        An (N, D) ``.npy`` file of embeddings (default None: ``RUN/features.npy``).
    num_clusters : int
        k (default 0 = the store's number of classes).
    seed : int
        Seeds k-means (default 0).
    iterations : int
        Lloyd steps at most (default 30).
    metric : str
        ``"cosine"`` (default: 1 - cosine, spherical k-means) or ``"euclidean"``.

    Returns
    -------
    np.ndarray
        (N,) float64, higher = farther from its prototype = harder = more worth keeping; NaN
        for non-finite rows.
    """
    k = check_int("num_clusters", num_clusters, 0, None, " (0 = number of classes)")
    if k == 0:
        k = int(dynamics.num_classes)
    return prototype_distances(load_features(dynamics, features), k, seed=seed,
                               iterations=iterations, metric=metric)
