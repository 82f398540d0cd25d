"""Regenerate a benchmark's results.csv/json, table.md and figures from its cell files, for
every study (one writer: the rows are the same fields everywhere, the tables and figures are
the study's)."""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping

import numpy as np

from .. import __version__
from ..errors import DataPruneError
from ..fileio import atomic_write_json, atomic_write_text
from ..logs import get_logger
from ..store import Dynamics
from .figures import (CLASS_NAMES, FigureWriteError, accuracy_vs_cost, accuracy_vs_ratio, closest_ratio, datamaps,
                      keeps_for, removed_hard)
from .one_run_study import OneRunConfig
from .tables import FIELDS, summary, table_md, to_csv

_log = get_logger("bench")

OUTPUTS = ("results.csv", "results.json", "table.md", "accuracy_vs_ratio.png", "datamaps.png",
           "removed_hard.png")
"""What the report of a main study writes (a one-run study: accuracy_vs_cost.png instead of
the three figures)."""


def write_report(bench: Any, errors: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write every output of ``bench`` (a :class:`~dataprune.bench.engine.Bench`) from the
    cells that have finished; ``errors``: methods that could not select (default: those the
    folder records). Returns results.json."""
    out, config = bench.out, bench.config
    errors = dict(bench.skipped() if errors is None else errors)
    rows = bench.rows()
    expected = sum(1 for _ in config.train_cells())
    results: dict[str, Any] = {
        "format": "dataprune-bench-results", "version": 2, "study": config.study, "dataprune": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": config.to_json(), "fields": list(FIELDS),
        "cells_finished": len(rows), "cells_planned": expected, "skipped_methods": errors,
        "rows": rows}
    if bench.subsets is not None:
        results["scoring_seconds"] = {name: bench.scoring_seconds(s, (i,)) for s in config.scorers
                                      for i, name in enumerate(s.run_names())}
    else:
        results["summary"] = summary(rows)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.csv", to_csv(rows))
    atomic_write_text(out / "table.md", table_md(rows, config, errors))
    if isinstance(config, OneRunConfig):
        if results["summary"]:
            _guard("accuracy_vs_cost.png", lambda: accuracy_vs_cost(out / "accuracy_vs_cost.png", results["summary"],
                                                                    config))
    else:
        figures(bench, rows)
    bench.log(f"report: {len(rows)} of {expected} training cells finished -> {out / 'table.md'}")
    return results


def _guard(what: str, fn: Callable[[], None]) -> None:
    """Draw a figure; one that cannot be drawn from what has finished is a warning, one that
    cannot be written is an error."""
    try:
        fn()
    except FigureWriteError:
        raise
    except (DataPruneError, FileNotFoundError, ValueError) as e:
        _log.warning(f"warning: {what} not drawn: {' '.join(str(e).split())}")


def figures(bench: Any, rows: list[dict[str, Any]]) -> None:
    out, config = bench.out, bench.config
    _guard("accuracy_vs_ratio.png", lambda: accuracy_vs_ratio(out / "accuracy_vs_ratio.png", rows, config))
    scorer = next((s for s in config.scorers if any(x.scorer == s.id for x in config.selectors)), None)
    if scorer is None:
        return
    run_dir = out / "score" / scorer.run_names()[0]
    if not bench.score_done(scorer, 0):  # absent (committed results keep no store) or unfinished
        return
    dyn = Dynamics.open(run_dir)
    ratio = closest_ratio(config.prune_ratios)
    sels = [s for s in config.selectors if s.scorer == scorer.id]
    keeps = keeps_for(bench, sels, ratio)
    _guard("datamaps.png", lambda: datamaps(out / "datamaps.png", dyn, keeps, ratio))
    dyn_sel = next((s for s in sels if s.method == "dyn-unc" and s.label in keeps), None)
    if dyn_sel is None:
        _log.warning("warning: removed_hard.png not drawn: no dyn-unc subset")
        return

    def draw() -> None:
        data = bench.data
        logits = run_dir / "final_logits.npy"
        shown = removed_hard(
            out / "removed_hard.png", data.train_images, data.train_y.numpy(), dyn, keeps[dyn_sel.label],
            predicted=np.load(logits).argmax(1) if logits.exists() else None,
            clean_labels=bench.clean_labels if config.label_noise > 0 else None,
            class_names=CLASS_NAMES.get(config.dataset),
            title=f"{config.dataset}: hardest training samples (lowest mean p(label) over the {scorer.model} "
                  f"scoring run) removed vs kept by {dyn_sel.label} at {100 * ratio:g}%")
        atomic_write_text(out / "removed_hard.json", json.dumps(shown) + "\n")
    _guard("removed_hard.png", draw)
