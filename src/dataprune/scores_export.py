"""Per-sample score tables: every method's score and rank for every sample, as CSV or Parquet.

A table has the columns ``index`` (sample index 0..N-1), ``label`` (the store's labels,
-1 = unknown), ``path`` (only for stores with a ``file_list.txt``: image-folder runs and
imports with a file list; relative to ``ROOT/train``), then for each method ``M`` the column
``M`` (its score, higher = more worth keeping; NaN = never observed) and ``M_rank`` (1 = most
worth keeping, in :func:`dataprune.select.keep_order`'s order, so ``select`` with the same
``nan_policy`` keeps exactly the samples whose rank is <= N - round(r*N)).
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DataPruneError
from .fileio import atomic_output, refuse_overwrite
from .interop import store_file_list
from .logs import get_logger
from .methods import get, score
from .select import keep_order
from .store import Dynamics

SUFFIXES = (".csv", ".parquet")
_CSV_CHUNK = 1 << 16  # rows formatted at a time: memory stays O(chunk), not O(N) strings
_log = get_logger("scores")


def scores_table(dynamics: Dynamics | str | os.PathLike, methods: Sequence[str], *,
                 params: Mapping[str, Mapping[str, Any]] | None = None,
                 nan_policy: str = "prune", seed: int = 0) -> dict[str, np.ndarray]:
    """Score every sample with each of ``methods`` and rank it.

    Parameters
    ----------
    dynamics : Dynamics | str | os.PathLike
        A :class:`~dataprune.Dynamics`, or the path of a run directory or store.
    methods : Sequence[str]
        Method names from :func:`dataprune.list_methods`, each at most once.
    params : Mapping[str, Mapping[str, Any]] | None
        Per-method parameters, e.g. ``{"dyn-unc": {"window": 10}}``.
    nan_policy : str
        Where NaN scores rank: ``"prune"`` (last, default), ``"keep"`` (first) or
        ``"raise"``; the same meaning as in :func:`dataprune.select`.
    seed : int
        The tie-break seed of :func:`dataprune.select` (default 0; equal scores rank in a
        seeded random order, so ``select(..., seed=seed)`` keeps the top ranks).

    Returns
    -------
    dict[str, np.ndarray]
        Columns by name, in order (see the module docstring), each of length N: ``index``
        and ``label`` int64, ``path`` object (str), ``M`` float64 (higher = more worth
        keeping), ``M_rank`` int64 (1 = most worth keeping). Example: scores [0.1, 0.9, 0.5]
        under ``el2n`` -> ``el2n_rank`` [3, 1, 2].

    Raises
    ------
    DataPruneError
        No methods, an unknown or repeated method, or ``params`` for a method not listed.
    """
    names = list(methods)
    if not names:
        raise DataPruneError("no methods given; expected at least one name from dataprune.list_methods()")
    for name in names:
        get(name)  # unknown names fail before any scoring
    dup = sorted({m for m in names if names.count(m) > 1})
    if dup:
        raise DataPruneError(f"method(s) {dup} given twice; expected each method once")
    params = dict(params or {})
    stray = [m for m in params if m not in names]
    if stray:
        raise DataPruneError(f"params given for {stray}, which are not among the methods {names}")
    dyn = dynamics if isinstance(dynamics, Dynamics) else Dynamics.open(dynamics)
    n = dyn.num_samples
    table: dict[str, np.ndarray] = {"index": np.arange(n, dtype=np.int64),
                                    "label": np.asarray(dyn.labels, dtype=np.int64)}
    listed = store_file_list(dyn)
    if listed is not None:
        table["path"] = np.asarray(listed[0], dtype=object)
    for name in names:
        t0 = time.perf_counter()
        s = score(name, dyn, **params.get(name, {}))
        _log.debug(f"scored {n} samples with {name} {params.get(name, {})} in {time.perf_counter() - t0:.2f} s")
        rank = np.empty(n, dtype=np.int64)
        rank[keep_order(s, nan_policy=nan_policy, seed=seed)] = np.arange(1, n + 1)
        table[name], table[f"{name}_rank"] = s, rank
    return table


def check_scores_path(path: str | os.PathLike) -> None:
    """Raise unless ``path`` ends in .csv, or in .parquet with pyarrow installed."""
    suffix = Path(path).suffix
    if suffix not in SUFFIXES:
        raise DataPruneError(f"score table {path} ends in {suffix!r}; expected .csv or .parquet")
    if suffix == ".parquet":
        _pyarrow()


def write_scores(path: str | os.PathLike, table: Mapping[str, np.ndarray], *,
                 force: bool = False) -> Path:
    """Atomically write a table of equal-length columns (e.g. :func:`scores_table`'s) to ``path``.

    ``.csv``: a header row, then one row per sample; floats in Python's shortest round-trip
    form, NaN as an empty cell. ``.parquet`` (needs pyarrow): one column each, NaN kept.

    Parameters
    ----------
    path : str | os.PathLike
        The output file, ``.csv`` or ``.parquet``.
    table : Mapping[str, np.ndarray]
        Columns by name, all of length N.
    force : bool
        Overwrite an existing file (default False: refused).

    Returns
    -------
    Path
        ``path``, the table written atomically.

    Raises
    ------
    DataPruneError
        Another suffix, ``.parquet`` without pyarrow, an existing file without ``force``, or
        columns of different lengths.
    """
    path = Path(path)
    check_scores_path(path)
    refuse_overwrite(path, force)
    lengths = {len(col) for col in table.values()}
    if len(lengths) > 1:
        raise DataPruneError(f"columns have lengths {sorted(lengths)}; expected one length N")
    if path.suffix == ".parquet":
        pa, pq = _pyarrow()
        cols = {name: np.asarray(col) for name, col in table.items()}
        arrow = pa.table({name: pa.array(col.tolist() if col.dtype == object else col)  # paths: str
                          for name, col in cols.items()})
        with atomic_output(path) as f:
            pq.write_table(arrow, f)
        return path
    n = lengths.pop() if lengths else 0
    with atomic_output(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(list(table))
        for a in range(0, n, _CSV_CHUNK):
            writer.writerows(zip(*(_cells(np.asarray(col[a:a + _CSV_CHUNK])) for col in table.values())))
        text.flush()
        text.detach()  # the atomic writer closes the file
    return path


def _cells(col: np.ndarray) -> list[Any]:
    """CSV cells of one column chunk: floats as shortest repr, NaN as ''."""
    if np.issubdtype(col.dtype, np.floating):
        return ["" if v != v else repr(v) for v in col.astype(np.float64).tolist()]
    return col.tolist()


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise DataPruneError("writing .parquet needs pyarrow: pip install 'dataprune[parquet]' "
                             "(or pyarrow), or write a .csv") from None
    return pyarrow, pyarrow.parquet
