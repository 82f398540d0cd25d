"""Run or report a benchmark folder, whatever its study: check the folder, reconcile the
config with its ``bench.json``, then the engine's scoring runs, keep files and cells, then
the report. One process at a time per folder; stale temp files of killed runs are removed."""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import DataPruneError
from ..fileio import LOCK_FILE, atomic_write_json, exclusive_lock, read_json, remove_stale_temps
from ..methods import get
from ..train.runs import Data
from .engine import Bench, norm
from .plan import BenchConfig, StudyConfig, diff_keys
from .report import write_report
from .studies import config_from_json

Log = Callable[[str], None]
FORMAT = "dataprune-bench"
BENCH_USER = "`dataprune bench` process"
#: run folders of `dataprune record` / `train` inside a bench: they clean up after themselves
_OWN_RUNS = ("score", "runs")
_TEMP = re.compile(r"^\.(.+)\.[A-Za-z0-9_]{8}\.tmp$")


def is_bench_folder(out: str | Path) -> bool:
    """Whether ``out/bench.json`` says dataprune made this folder as a benchmark."""
    try:
        stored = read_json(Path(out) / "bench.json")
    except DataPruneError:
        return False
    return isinstance(stored, dict) and stored.get("format") == FORMAT


def check_out(out: str | Path) -> None:
    """Refuse an ``--out`` that is a file, or an existing non-empty folder that is not a
    dataprune bench folder (``--force`` or not: a bench never writes into a user's folder)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataPruneError(f"--out {out} is a file; expected a benchmark folder (new or made by dataprune bench)")
    names = sorted(e.name for e in out.iterdir() if e.name != LOCK_FILE) if out.is_dir() else []
    if names and not is_bench_folder(out):
        raise DataPruneError(f"--out {out} is not a dataprune bench folder (no bench.json; it holds "
                             f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}); choose a new or "
                             "empty folder (--force does not change this)")


def sweep_temps(out: Path) -> list[Path]:
    """Delete the temp files that writes killed midway left in ``out`` (outside the score and
    train run folders, which sweep their own); returns them. Call holding the folder's lock."""
    removed: list[Path] = []
    for d in [out, *(p for p in out.rglob("*") if p.is_dir() and not p.is_symlink())]:
        rel = d.relative_to(out).parts
        if rel and rel[0] in _OWN_RUNS:
            continue
        names = {m.group(1) for f in d.iterdir() if (m := _TEMP.match(f.name))}
        removed += remove_stale_temps(d, names)
    return removed


def prepare(out: str | Path, config: StudyConfig, *, force: bool = False) -> StudyConfig:
    """Validate ``config``, reconcile it with ``out/bench.json`` and write the result.

    A folder of another study, or made with a different fixed part (data and its regime,
    training settings, a scorer of the same id with other settings), is refused unless
    ``force`` (same study only); otherwise the requested lists are merged into the stored
    ones. Returns the merged config.
    """
    config.validate()
    for sel in getattr(config, "selectors", ()):
        get(sel.method)
    out = Path(out)
    path = out / "bench.json"
    merged = config
    if path.exists():
        stored = read_json(path).get("config", {})
        if stored.get("study", "main") != config.study and {stored.get("study", "main"), config.study} & {"one-run"}:
            raise DataPruneError(f"{out} holds a benchmark of another study ({stored.get('study', 'main')!r}, "
                                 f"not {config.study!r}); use another --out")
        old = config_from_json(stored)
        diffs = _fixed_diffs(old, config)
        if diffs and not force:
            raise DataPruneError(f"{out} holds a benchmark with another configuration ({'; '.join(diffs[:4])}"
                                 f"{' ...' if len(diffs) > 4 else ''}); use another --out, the same "
                                 f"settings, or --force (stale cells are then recomputed)")
        if not diffs:
            merged = config.merged_with(old)
    atomic_write_json(path, {"format": FORMAT, "version": 1, "dataprune": __version__,
                             "config": merged.to_json(), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return merged


def _fixed_diffs(old: StudyConfig, new: StudyConfig) -> list[str]:
    a, b = norm(old.fixed()), norm(new.fixed())
    diffs = diff_keys({k: v for k, v in a.items() if k != "scorers"}, {k: v for k, v in b.items() if k != "scorers"})
    if "scorers" in a and "scorers" in b:
        diffs += [d for sid in a["scorers"] if sid in b["scorers"]
                  for d in diff_keys(a["scorers"][sid], b["scorers"][sid], f"scorers.{sid}.")]
    return diffs


def load_config(out: str | Path) -> StudyConfig:
    path = Path(out) / "bench.json"
    if not path.exists():
        raise DataPruneError(f"no benchmark at {out} (bench.json missing); run `dataprune bench --out {out}` first")
    return config_from_json(read_json(path)["config"])


def run_bench(out: str | Path, config: StudyConfig, *, force: bool = False, log: Log | None = None,
              progress: bool = False, data: Data | None = None, max_cells: int | None = None,
              report: bool = True) -> Bench:
    """Run (or resume) the benchmark described by ``config`` in ``out`` and write its report.

    Only cells missing from ``out`` (or stale) are computed. ``max_cells`` stops after that
    many training cells (the report then covers what has finished).
    """
    check_out(out)
    with exclusive_lock(out, BENCH_USER):
        sweep_temps(Path(out))
        merged = prepare(out, config, force=force)
        # run only what this invocation asked for; tabulate everything the folder holds
        asked = config
        if isinstance(config, BenchConfig):
            asked = dataclasses.replace(merged, selectors=config.selectors, prune_ratios=config.prune_ratios,
                                        train_models=config.train_models, seeds=config.seeds, full=config.full,
                                        baseline_budgets=config.baseline_budgets,
                                        scorers=[s for s in merged.scorers if s.id in {x.id for x in config.scorers}])
        bench = Bench(out, asked, log=log, progress=progress, data=data)
        # the scoring runs' stores are not kept with committed results: a rerun that only adds
        # cells needing no keep file (e.g. the matched-compute baseline) must not redo them
        errors = bench.skipped()
        if any(c.selector is not None for c in bench.pending(errors)):
            bench.run_scoring()
            errors = bench.run_selection()
        whole = Bench(out, merged, log=log, progress=progress)
        after = (lambda: write_report(whole)) if report and not bench.subsets else None
        bench.run_training(errors, max_cells=max_cells, after_cell=after)
        whole._data, whole._clean_labels, whole.is_noisy = bench._data, bench._clean_labels, bench.is_noisy
        if report:
            write_report(whole, errors=errors)
    return whole


def report_only(out: str | Path, *, log: Log | None = None) -> dict[str, Any]:
    """Regenerate the outputs of the benchmark in ``out`` from whatever has finished."""
    if not is_bench_folder(out):
        load_config(out)  # the one-line error of a folder without bench.json
        raise DataPruneError(f"{out} is not a dataprune bench folder (bench.json is not one); expected a "
                             "folder made by `dataprune bench`")
    with exclusive_lock(out, BENCH_USER):
        sweep_temps(Path(out))
        bench = Bench(out, load_config(out), log=log)
        return write_report(bench)

