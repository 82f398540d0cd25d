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
