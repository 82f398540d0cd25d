"""Aggregation over seeds and ranking of methods, as in the paper's Table 2."""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable, Iterable, Mapping

import numpy as np


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; NaN for fewer than two) and count of the
    finite ``values``; (NaN, NaN, 0) if there are none. Example: [1, 2, 3] -> (2.0, 1.0, 3)."""
    v = np.asarray([float(x) for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size)


def aggregate(rows: Iterable[Mapping[str, Any]], keys: tuple[str, ...], value: str
              ) -> dict[tuple[Hashable, ...], tuple[float, float, int]]:
    """Group ``rows`` by the fields ``keys`` and reduce field ``value`` with :func:`mean_std`.

    Returns ``{(row[k] for k in keys): (mean, std, n)}`` in first-seen group order.
    """
    groups: dict[tuple[Hashable, ...], list[float]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row.get(value))
    return {k: mean_std(v) for k, v in groups.items()}


def ranks(values: np.ndarray | list[float], *, higher_is_better: bool = True) -> np.ndarray:
    """Competition ranks, 1 = best, ties share the average of their ranks; NaN stays NaN.

    rank_i = 1 + #(strictly better) + #(equal others) / 2. Example: [90, 95, 90] ->
    [2.5, 1, 2.5].
    """
    v = np.asarray(values, dtype=np.float64)
    if not higher_is_better:
        v = -v
    ok = ~np.isnan(v)
    out = np.full(v.shape, np.nan)
    w = v[ok]
    if w.size:
        s = np.sort(w)
        better = w.size - np.searchsorted(s, w, side="right")   # strictly greater
        equal = np.searchsorted(s, w, side="right") - np.searchsorted(s, w, side="left") - 1
        out[ok] = 1 + better + equal / 2
    return out


def rank_table(means: Mapping[str, Mapping[float, float]], columns: list[float], *,
               higher_is_better: bool = True) -> tuple[dict[str, dict[float, float]], dict[str, float]]:
    """Per column rank of every row (method) by its mean, and each row's average rank over
    the columns where it has a value. ``means[row][column]`` may be missing or NaN."""
    rows = list(means)
    per: dict[str, dict[float, float]] = {r: {} for r in rows}
    for c in columns:
        r = ranks([means[row].get(c, math.nan) for row in rows], higher_is_better=higher_is_better)
        for row, x in zip(rows, r):
            if not math.isnan(x):
                per[row][c] = float(x)
    avg = {row: float(np.mean(list(per[row].values()))) if per[row] else math.nan for row in rows}
    return per, avg


def best(values: Mapping[Any, float], better: Callable[[float, float], bool] = lambda a, b: a > b
         ) -> set[Any]:
    """Keys whose finite value is the best (ties: all of them)."""
    finite = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if not finite:
        return set()
    top = next(iter(finite.values()))
    for v in finite.values():
        if better(v, top):
            top = v
    return {k for k, v in finite.items() if v == top}


def pareto(points: Iterable[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats: none has lower or
    equal cost and higher accuracy, or lower cost and equal accuracy; ordered by cost.
    Example: [(1, 90), (0.5, 91), (0.7, 89)] -> [1]."""
    points = list(points)
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_acc = [], -math.inf
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front


def baseline_at(points: Iterable[tuple[float, float]], cost: float) -> float:
    """Accuracy of the matched-compute baseline at ``cost``: linear interpolation between the
    measured (budget B, accuracy) ``points`` (the full run is the point B = 1); NaN outside
    their range or without points. Example: [(0.5, 0.90), (1.0, 0.92)] at 0.75 -> 0.91."""
    pts = sorted((float(b), float(a)) for b, a in points if not math.isnan(float(a)))
    c = float(cost)
    if not pts or math.isnan(c) or not pts[0][0] - 1e-9 <= c <= pts[-1][0] + 1e-9:
        return math.nan
    xs, ys = zip(*pts)
    return float(np.interp(c, xs, ys))


def add_deltas(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add to every row, paired by (train model, E, seed): ``delta_vs_full`` (accuracy - the
    full run's), ``delta_vs_baseline`` (accuracy - :func:`baseline_at` its ``cost``; blank for
    the full and baseline rows themselves), ``wall_vs_full`` and ``cpu_vs_full`` (seconds /
    the full run's). NaN where the partner has not finished. Returns ``rows``."""
    arm = lambda r: (r["train_model"], r["train_epochs"], r["seed"])  # noqa: E731
    full = {arm(r): r for r in rows if r["kind"] == "full"}
    points: dict[tuple, list[tuple[float, float]]] = {}
    for r in rows:
        if r["kind"] in ("full", "baseline"):
            points.setdefault(arm(r), []).append((r["cost"], r["test_accuracy"]))
    for r in rows:
        f = full.get(arm(r))
        r["delta_vs_full"] = r["test_accuracy"] - f["test_accuracy"] if f else math.nan
        r["wall_vs_full"] = r["train_seconds"] / f["train_seconds"] if f and f["train_seconds"] else math.nan
        cpu, fcpu = _num(r.get("cpu_seconds")), _num(f.get("cpu_seconds")) if f else math.nan
        r["cpu_vs_full"] = cpu / fcpu if fcpu > 0 else math.nan  # NaN: not measured
        r["delta_vs_baseline"] = ("" if r["kind"] in ("full", "baseline") else
                                  r["test_accuracy"] - baseline_at(points.get(arm(r), ()), _num(r["cost"])))
    return rows


def _num(v: Any) -> float:
    return float(v) if v not in ("", None) else math.nan
