"""Run a benchmark: scoring runs, keep files, training cells; every step resumable.

Layout of a benchmark folder ``BENCH``::

    bench.json                     the config (fixed part + the union of requested lists)
    noise/                         is_noisy.npy, noisy_labels.npy (with --label-noise)
    score/<scorer>[-run<i>]/       normal run directories of ``dataprune score``
    cells/score/<run>.json         one per finished scoring run: key, seconds, fingerprint
    keep/<scorer>/<method>-r<R>.txt (+ .json manifest), <method>.scores.npy
    cells/full/<model>-seed<s>.json, cells/<scorer>/<method>/r<R>/<model>-seed<s>.json
    results.csv, results.json, table.md, *.png    regenerated from the cells by report()

A cell counts as done when its JSON exists and its ``key`` equals the key the current
config gives it; anything else is (re)computed. Files are written atomically.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..errors import DataPruneError
from ..fileio import atomic_write_json, read_json
from ..keepfile import manifest_path, read_keep, write_keep
from ..methods import get, methods, score
from ..store import Dynamics
from ..train.data import ImageData
from ..train.loop import TrainConfig
from ..train.runs import DataSpec, score_run, train_run
from .noise import noisy_removed_share, symmetric_label_noise
from .plan import BenchConfig, Scorer, Selector, TrainCell, diff_keys, keep_relpath, slug
from .selection import draw

Log = Callable[[str], None]
BASE_SIGNALS = ("prob", "correct")


def _norm(obj: Any) -> Any:
    """JSON round trip, so freshly built keys compare equal to keys read from disk."""
    return json.loads(json.dumps(obj, sort_keys=True))


def _read_cell(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def prepare(out: str | Path, config: BenchConfig, *, force: bool = False) -> BenchConfig:
    """Validate ``config``, reconcile it with ``out/bench.json`` and write the result.

    A folder made with a different fixed part (data, noise, training settings, a scorer of
    the same id with other settings) is refused unless ``force``; otherwise the requested
    lists are merged into the stored ones. Returns the merged config.
    """
    config.validate()
    for sel in config.selectors:
        get(sel.method)
    out = Path(out)
    path = out / "bench.json"
    merged = config
    if path.exists():
        stored = read_json(path)
        old = BenchConfig.from_json(stored.get("config", {}))
        diffs = diff_keys(_norm({k: v for k, v in old.fixed().items() if k != "scorers"}),
                          _norm({k: v for k, v in config.fixed().items() if k != "scorers"}))
        old_scorers, new_scorers = _norm(old.fixed()["scorers"]), _norm(config.fixed()["scorers"])
        diffs += [d for sid in old_scorers if sid in new_scorers
                  for d in diff_keys(old_scorers[sid], new_scorers[sid], f"scorers.{sid}.")]
        if diffs and not force:
            raise DataPruneError(f"{out} holds a benchmark with another configuration ({'; '.join(diffs[:4])}"
                                 f"{' ...' if len(diffs) > 4 else ''}); use another --out, the same "
                                 f"settings, or --force (stale cells are then recomputed)")
        if not diffs:
            merged = config.merged_with(old)
    atomic_write_json(path, {"format": "dataprune-bench", "version": 1, "dataprune": __version__,
                             "config": merged.to_json(), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return merged


def load_config(out: str | Path) -> BenchConfig:
    path = Path(out) / "bench.json"
    if not path.exists():
        raise DataPruneError(f"no benchmark at {out} (bench.json missing); run `dataprune bench --out {out}` first")
    return BenchConfig.from_json(read_json(path)["config"])


class Bench:
    """One benchmark folder: its config, data, scoring runs, keep files and cells."""

    def __init__(self, out: str | Path, config: BenchConfig, *, log: Log | None = None,
                 progress: bool = False, data: ImageData | None = None) -> None:
        self.out = Path(out)
        self.config = config
        self.log = log or (lambda msg: None)
        self.progress = progress
        self.spec = DataSpec(config.dataset, config.data_dir, config.limit)
        self._data = data
        self._clean_labels: np.ndarray | None = None
        self.is_noisy: np.ndarray | None = None
        self._ood: torch.Tensor | None = None

    # --- data --------------------------------------------------------------------------------
    @property
    def data(self) -> ImageData:
        """The training data as the user has it: with the injected label noise, if any."""
        if self._data is None or self._clean_labels is None:
            data = self._data if self._data is not None else self.spec.load()
            self._clean_labels = data.train_y.numpy().copy()
            if self.config.label_noise > 0:
                noisy, self.is_noisy = symmetric_label_noise(
                    self._clean_labels, self.config.label_noise, data.num_classes, seed=self.config.noise_seed)
                data = dataclasses.replace(data, train_y=torch.from_numpy(noisy))
                d = self.out / "noise"
                d.mkdir(parents=True, exist_ok=True)
                np.save(d / "is_noisy.npy", self.is_noisy)
                np.save(d / "noisy_labels.npy", noisy)
                np.save(d / "clean_labels.npy", self._clean_labels)
            self._data = data
        return self._data

    @property
    def clean_labels(self) -> np.ndarray:
        self.data  # noqa: B018  (loads)
        assert self._clean_labels is not None
        return self._clean_labels

    # --- scoring runs ------------------------------------------------------------------------
    def signals(self) -> tuple[str, ...]:
        """Every signal any registered method needs (they cost little to record at once)."""
        needed = dict.fromkeys(BASE_SIGNALS)
        for name in methods():
            needed.update(dict.fromkeys(get(name).needs))
        return tuple(needed)

    def score_cell_path(self, run_name: str) -> Path:
        return self.out / "cells" / "score" / f"{slug(run_name)}.json"

    def score_done(self, scorer: Scorer, run: int) -> dict[str, Any] | None:
        name = scorer.run_names()[run]
        cell = _read_cell(self.score_cell_path(name))
        if cell is None or cell.get("key") != _norm(self.config.score_key(scorer, run)):
            return None
        try:
            dyn = Dynamics.open(self.out / "score" / name)
        except DataPruneError:
            return None
        if dyn.fingerprint != cell.get("fingerprint") or not set(self.signals()) <= set(dyn.signals):
            return None
        return cell

    def run_scoring(self) -> None:
        for scorer in self.config.scorers:
            for run, name in enumerate(scorer.run_names()):
                if self.score_done(scorer, run):
                    continue
                n = len(self.data.train_y)
                self.log(f"scoring run {name}: {scorer.model}, {scorer.epochs} epochs on {n} samples "
                         f"({scorer.record_view} view, seed {scorer.seed + run})")
                cfg = TrainConfig(epochs=scorer.epochs, batch_size=self.config.batch_size, lr=self.config.lr,
                                  seed=scorer.seed + run)
                result = score_run(self.out / "score" / name, self.spec, model=scorer.model, cfg=cfg,
                                   record_view=scorer.record_view, signals=self.signals(), force=True,
                                   data=self.data, progress=self.progress,
                                   log=self.log if self.progress else None)
                dyn = Dynamics.open(result.run_dir)
                atomic_write_json(self.score_cell_path(name), {
                    "key": self.config.score_key(scorer, run), "seconds": result.seconds,
                    "fingerprint": dyn.fingerprint, "signals": dyn.signals, "run_dir": f"score/{name}"})
                self.log(f"scoring run {name} done in {result.seconds:.0f} s")

    def dynamics(self, sel: Selector) -> list[Dynamics]:
        scorer = self.config.scorer(sel.scorer)
        runs = sel.runs if sel.runs is not None else range(scorer.runs)
        return [Dynamics.open(self.out / "score" / scorer.run_names()[i]) for i in runs]

    def scoring_seconds(self, scorer: Scorer, runs: tuple[int, ...] | None = None) -> float:
        total = 0.0
        for i in (runs if runs is not None else range(scorer.runs)):
            cell = _read_cell(self.score_cell_path(scorer.run_names()[i]))
            total += float(cell["seconds"]) if cell else math.nan
        return total

    # --- keep files --------------------------------------------------------------------------
    def keep_path(self, sel: Selector, ratio: float) -> Path:
        return self.out / keep_relpath(sel, ratio)

    def error_path(self, sel: Selector) -> Path:
        return self.out / "keep" / slug(sel.scorer) / f"{sel.slug}.error.json"

    def keep_done(self, sel: Selector, ratio: float) -> dict[str, Any] | None:
        path = self.keep_path(sel, ratio)
        manifest = _read_cell(manifest_path(path))
        if manifest is None or not path.exists() or manifest.get("key") != _norm(self.config.keep_key(sel, ratio)):
            return None
        try:
            if keep_sha(read_keep(path)) != manifest.get("sha"):
                return None
        except DataPruneError:
            return None
        prints = [d.fingerprint for d in self.dynamics(sel)]
        return manifest if manifest.get("store_fingerprints") == prints else None

    def run_selection(self) -> dict[str, str]:
        """Write every missing keep file; returns ``{label: error}`` for methods that failed."""
        errors: dict[str, str] = {}
        for sel in self.config.selectors:
            todo = [r for r in self.config.prune_ratios if not self.keep_done(sel, r)]
            if not todo:
                continue
            dyns = self.dynamics(sel)
            t0 = time.perf_counter()
            try:
                per_run = [score(sel.method, d, **sel.param_dict()) for d in dyns]
            except (DataPruneError, FileNotFoundError) as e:
                msg = " ".join(str(e).split())
                errors[sel.label] = msg
                atomic_write_json(self.error_path(sel), {"label": sel.label, "error": msg})
                self.log(f"warning: method {sel.label!r} skipped: {msg}")
                continue
            scores = _mean_over_runs(per_run)
            seconds = time.perf_counter() - t0
            self.error_path(sel).unlink(missing_ok=True)
            folder = self.out / "keep" / slug(sel.scorer)
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{sel.slug}.scores.npy", scores)
            n = len(scores)
            nan = int(np.isnan(scores).sum())
            if nan:
                self.log(f"warning: {sel.label}: {nan} of {n} scores are NaN; they are pruned first")
            for r in todo:
                kw: dict[str, Any] = {}
                if self.config.class_balanced:
                    kw.update(labels=dyns[0].labels, class_balanced=True)
                keep = draw(sel.selection, scores, r, dyns, sel.param_dict(), **kw)
                manifest = {"key": self.config.keep_key(sel, r), "label": sel.label, "method": sel.method,
                            "params": sel.param_dict(), "selection": dict(sel.selection),
                            "prune_ratio": r, "num_samples": n,
                            "scorer": sel.scorer, "runs": [str(d.path.parent.relative_to(self.out)) for d in dyns],
                            "store_fingerprints": [d.fingerprint for d in dyns], "nan_scores": nan,
                            "selection_seconds": seconds, "dataset": self.config.dataset,
                            "class_balanced": self.config.class_balanced, "dataprune": __version__}
                manifest["sha"] = keep_sha(keep)
                if self.config.label_noise > 0:
                    self.data  # noqa: B018  (loads the noise mask)
                    manifest["noisy_removed_share"] = noisy_removed_share(keep, self.is_noisy)
                write_keep(self.keep_path(sel, r), keep, manifest, force=True)
        for sel in self.config.selectors:
            if sel.label not in errors and self.error_path(sel).exists():
                errors[sel.label] = read_json(self.error_path(sel)).get("error", "?")
        return errors

    # --- training cells ----------------------------------------------------------------------
    def cell_key(self, cell: TrainCell) -> dict[str, Any]:
        return _norm(self.config.train_cell_key(cell))

    def cell_done(self, cell: TrainCell) -> dict[str, Any] | None:
        got = _read_cell(self.out / cell.relpath())
        if got is None or got.get("key") != self.cell_key(cell):
            return None
        if cell.selector is not None:
            manifest = _read_cell(manifest_path(self.keep_path(cell.selector, cell.prune_ratio)))
            if manifest is None or got.get("keep_sha") != manifest.get("sha"):
                return None
        return got

    def epochs_for(self, kept: int) -> int:
        """Training epochs of a subset of ``kept`` samples under the budget."""
        cfg = self.config
        if cfg.budget == "epochs":
            return cfg.train_epochs
        n = len(self.data.train_y)
        full_steps = cfg.train_epochs * math.ceil(n / cfg.batch_size)
        return max(1, round(full_steps / math.ceil(kept / cfg.batch_size)))

    def ood_images(self) -> torch.Tensor:
        if self._ood is None:
            from .ood import load_ood
            x = self.data.train_x
            self._ood = load_ood(self.config.ood_dataset, size=x.shape[-1], channels=x.shape[1])
        return self._ood

    def evaluate_ood(self, model: torch.nn.Module, data: ImageData) -> dict[str, Any]:
        from .ood import max_softmax, msp_aupr
        msp_in = max_softmax(model, data.test_x, data.mean, data.std)
        msp_out = max_softmax(model, self.ood_images(), data.mean, data.std)
        return {"ood_aupr": msp_aupr(msp_in, msp_out), "ood_dataset": self.config.ood_dataset,
                "ood_chance": len(msp_out) / (len(msp_in) + len(msp_out))}

    def run_cell(self, cell: TrainCell) -> dict[str, Any]:
        subset, keep_sha = None, None
        if cell.selector is not None:
            path = self.keep_path(cell.selector, cell.prune_ratio)
            subset = read_keep(path, len(self.data.train_y))
            keep_sha = read_json(manifest_path(path)).get("sha")
        kept = len(self.data.train_y) if subset is None else len(subset)
        cfg = TrainConfig(epochs=self.epochs_for(kept), batch_size=self.config.batch_size,
                          lr=self.config.lr, seed=cell.seed)
        metrics = train_run(self.spec, model=cell.train_model, cfg=cfg, subset=subset, data=self.data,
                            progress=self.progress,
                            evaluate_extra=self.evaluate_ood if self.config.ood_dataset else None)
        result = {"key": self.cell_key(cell), "keep_sha": keep_sha, "metrics": metrics,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(self.out / cell.relpath(), result)
        return result

    def pending(self, errors: dict[str, str]) -> list[TrainCell]:
        return [c for c in self.config.train_cells()
                if (c.selector is None or c.selector.label not in errors) and not self.cell_done(c)]

    def run_training(self, errors: dict[str, str], cells: list[TrainCell] | None = None,
                     max_cells: int | None = None) -> int:
        """Train the pending cells (or ``cells``), one progress line each; returns how many ran."""
        todo = self.pending(errors) if cells is None else cells
        if max_cells is not None:
            todo = todo[:max_cells]
        n = len(self.data.train_y)

        def units(c: TrainCell) -> float:  # sample-epochs: what training time scales with
            kept = n if c.selector is None else n - round_half_up(c.prune_ratio * n)
            return kept * self.epochs_for(kept)

        spent: dict[str, list[float]] = {}  # train model -> [seconds, units] so far
        t0 = time.perf_counter()
        for i, cell in enumerate(todo, 1):
            t_cell = time.perf_counter()
            result = self.run_cell(cell)
            acc = spent.setdefault(cell.train_model, [0.0, 0.0])
            acc[0] += time.perf_counter() - t_cell
            acc[1] += units(cell)
            elapsed = time.perf_counter() - t0
            eta = _eta(todo[i:], units, spent)
            m = result["metrics"]
            ood = f"  OOD AUPR {100 * m['ood_aupr']:.2f} %" if "ood_aupr" in m else ""
            what = "full set" if cell.selector is None else f"{cell.selector.label} r={cell.prune_ratio:g}"
            self.log(f"[{i}/{len(todo)}] {cell.train_model} seed {cell.seed} {what}: test acc "
                     f"{100 * m['test_accuracy']:.2f} %{ood} ({m['train_samples']} samples, {m['epochs']} epochs, "
                     f"{m['seconds']:.0f} s)  elapsed {_hms(elapsed)}  ETA {_hms(eta)}")
        return len(todo)

    # --- rows --------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per finished training cell of the config (the full set once per train model
        and seed, with method ``full`` and prune ratio 0)."""
        rows = []
        for cell in self.config.train_cells():
            got = self.cell_done(cell)
            if got is None:
                continue
            m = got["metrics"]
            sel = cell.selector
            scorer = self.config.scorer(sel.scorer) if sel is not None else None
            manifest = _read_cell(manifest_path(self.keep_path(sel, cell.prune_ratio))) if sel else None
            rows.append({
                "dataset": self.config.dataset, "method": cell.method,
                "method_name": sel.method if sel else "full",
                "params": json.dumps(sel.param_dict(), sort_keys=True) if sel else "",
                "prune_ratio": cell.prune_ratio, "scorer": sel.scorer if sel else "",
                "score_model": scorer.model if scorer else "", "score_epochs": scorer.epochs if scorer else "",
                "record_view": scorer.record_view if scorer else "",
                "score_runs": len(sel.runs) if sel and sel.runs is not None else (scorer.runs if scorer else ""),
                "train_model": cell.train_model, "seed": cell.seed, "label_noise": self.config.label_noise,
                "test_accuracy": m["test_accuracy"], "train_samples": m["train_samples"],
                "noisy_removed_share": manifest.get("noisy_removed_share", "") if manifest else "",
                "ood_aupr": m.get("ood_aupr", ""), "ood_chance": m.get("ood_chance", ""), "budget": self.config.budget, "epochs": m["epochs"],
                "optimizer_steps": m.get("optimizer_steps", ""), "train_seconds": m["seconds"],
                "score_seconds": self.scoring_seconds(scorer, sel.runs) if scorer else "",
                "selection_seconds": manifest.get("selection_seconds", "") if manifest else "",
            })
        return rows


def _mean_over_runs(per_run: list[np.ndarray]) -> np.ndarray:
    """Mean of several runs' scores, ignoring NaN; NaN only where every run is NaN."""
    if len(per_run) == 1:
        return per_run[0]
    stack = np.stack(per_run)
    ok = ~np.isnan(stack)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(0), np.where(ok, stack, 0.0).sum(0) / np.maximum(ok.sum(0), 1), np.nan)


def _eta(remaining: list[TrainCell], units: Callable[[TrainCell], float],
         spent: dict[str, list[float]]) -> float:
    """Seconds left: each train model's measured seconds per sample-epoch times its remaining
    sample-epochs; a model not measured yet is assumed as fast as the slowest one seen."""
    rates = {m: sec / u for m, (sec, u) in spent.items() if u > 0}
    fallback = max(rates.values(), default=0.0)
    return sum(units(c) * rates.get(c.train_model, fallback) for c in remaining)


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def keep_sha(keep: np.ndarray) -> str:
    return hashlib.blake2b(np.asarray(keep, np.int64).tobytes(), digest_size=16).hexdigest()


def run_bench(out: str | Path, config: BenchConfig, *, force: bool = False, log: Log | None = None,
              progress: bool = False, data: ImageData | None = None, max_cells: int | None = None,
              report: bool = True) -> Bench:
    """Run (or resume) the benchmark described by ``config`` in ``out`` and write its report.

    Only cells missing from ``out`` (or stale) are computed. ``max_cells`` stops after that
    many training cells (the report then covers what has finished).
    """
    merged = prepare(out, config, force=force)
    # run only what this invocation asked for; tabulate everything the folder holds
    bench = Bench(out, dataclasses.replace(merged, selectors=config.selectors, prune_ratios=config.prune_ratios,
                                           train_models=config.train_models, seeds=config.seeds,
                                           full=config.full, scorers=[s for s in merged.scorers
                                                                      if s.id in {x.id for x in config.scorers}]),
                  log=log, progress=progress, data=data)
    bench.run_scoring()
    errors = bench.run_selection()
    bench.run_training(errors, max_cells=max_cells)
    full = Bench(out, merged, log=log, progress=progress, data=bench._data)
    full._clean_labels, full.is_noisy = bench._clean_labels, bench.is_noisy
    if report:
        from .report import write_report
        write_report(full, errors=errors)
    return full
