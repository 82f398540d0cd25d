"""The bench engine: one benchmark folder, whatever its study.

Every study (main, cost, one-run) is a configuration (:class:`~dataprune.bench.plan.BenchConfig`,
:class:`~dataprune.bench.one_run_study.OneRunConfig`) that lists its cells
(:class:`~dataprune.bench.plan.TrainCell`: one training run each, with a key); this engine
loads the data in the study's regime, makes the scoring runs and keep files the subset cells
need, trains every missing or stale cell into ``cells/.../*.json`` (``{"key", "metrics", ...}``),
and turns the finished cells into rows (one per cell, the same fields in every study, with the
deltas vs the full run and vs the matched-compute baseline, paired by seed).

Layout of a benchmark folder ``BENCH``::

    bench.json                     the config (fixed part + the union of requested lists)
    noise/                         is_noisy.npy, noisy_labels.npy, clean_labels.npy (--label-noise)
    imbalance/kept_indices.npy     the long-tailed subset of the loaded training set (--imbalance)
    score/<scorer>[-run<i>]/       normal run directories of ``dataprune record``
    cells/score/<run>.json         one per finished scoring run: key, seconds, fingerprint
    keep/<scorer>/<method>-r<R>.txt (+ .json manifest), <method>.scores.npy
    cells/full/<model>-seed<s>.json, cells/baseline/B<B>/<model>-seed<s>.json,
    cells/<scorer>/<method>/r<R>/<model>-seed<s>.json        (main and cost studies)
    runs/<model>-E<E>/<variant>/seed<s>/, cells/<model>-E<E>/<variant|baseline-B<B>>/seed<s>.json  (one-run)
    results.csv, results.json, table.md, *.png    regenerated from the cells by the report

A cell counts as done when its JSON exists and its ``key`` equals the key the current
config gives it; anything else is (re)computed. Files are written atomically.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataPruneError
from ..fileio import atomic_save_npy, atomic_write_json, read_json
from ..integrity import int64_digest
from ..keepfile import keep_manifest, manifest_path, read_keep, write_keep
from ..logs import get_logger
from ..methods import get, methods, score
from ..select_rule import rule_inputs, select_by_rule
from ..store import Dynamics
from ..train.loop import TrainConfig
from ..train.one_run import resume_run, start_run
from ..train.plan import PrunePlan
from ..train.runs import Data, DataSpec, labels_digest, score_run, train_run
from .noise import noisy_removed_share, symmetric_label_noise
from .plan import BASELINE, FULL, BenchConfig, Scorer, Selector, StudyConfig, TrainCell, keep_relpath, slug
from .regimes import long_tail_indices
from .selection import rule_for
from .stats import add_deltas
from .tables import FIELDS

Log = Callable[[str], None]
BASE_SIGNALS = ("prob", "correct")
_log = get_logger("bench")


def norm(obj: Any) -> Any:
    """JSON round trip, so freshly built keys compare equal to keys read from disk."""
    return json.loads(json.dumps(obj, sort_keys=True))


def read_cell(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


class Bench:
    """One benchmark folder: its config, data, scoring runs, keep files and cells."""

    def __init__(self, out: str | Path, config: StudyConfig, *, log: Log | None = None,
                 progress: bool = False, data: Data | None = None) -> None:
        self.out = Path(out)
        self.config = config
        self.log = log or (lambda msg: None)
        self.progress = progress
        self.spec = DataSpec(config.dataset, config.data_dir, config.limit, config.image_size,
                             workers=config.workers)
        self._data = data
        self._clean_labels: np.ndarray | None = None
        self.is_noisy: np.ndarray | None = None
        self._ood: torch.Tensor | None = None

    @property
    def subsets(self) -> BenchConfig | None:
        """The config when its study trains subsets from scoring runs (main, cost), else None."""
        return self.config if isinstance(self.config, BenchConfig) else None

    # --- data --------------------------------------------------------------------------------
    @property
    def data(self) -> Data:
        """The training data as the study has it: the long-tailed subset (``--imbalance``), then
        the injected label noise, if any; the test split as loaded."""
        if self._data is None or self._clean_labels is None:
            data = self._data if self._data is not None else self.spec.load()
            cfg = self.config
            if cfg.imbalance != 1:
                if not hasattr(data, "train_x"):
                    raise DataPruneError(f"--imbalance {cfg.imbalance:g} works with IDX datasets only; "
                                         f"drop it for --dataset {cfg.dataset}")
                kept = long_tail_indices(data.train_y.numpy(), cfg.imbalance, seed=cfg.imbalance_seed,
                                         num_classes=data.num_classes)
                t = torch.from_numpy(kept)
                data = dataclasses.replace(data, train_x=data.train_x[t], train_y=data.train_y[t])
                atomic_save_npy(self.out / "imbalance" / "kept_indices.npy", kept)
            self._clean_labels = data.train_y.numpy().copy()
            if cfg.label_noise > 0:
                noisy, self.is_noisy = symmetric_label_noise(
                    self._clean_labels, cfg.label_noise, data.num_classes, seed=cfg.noise_seed)
                data = dataclasses.replace(data, train_y=torch.from_numpy(noisy))
                d = self.out / "noise"
                atomic_save_npy(d / "is_noisy.npy", self.is_noisy)
                atomic_save_npy(d / "noisy_labels.npy", noisy)
                atomic_save_npy(d / "clean_labels.npy", self._clean_labels)
            self._data = data
        return self._data

    @property
    def clean_labels(self) -> np.ndarray:
        self.data  # noqa: B018  (loads)
        assert self._clean_labels is not None
        return self._clean_labels

    # --- scoring runs (subset studies) -------------------------------------------------------
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
        cell = read_cell(self.score_cell_path(name))
        if cell is None or cell.get("key") != norm(self.subsets.score_key(scorer, run)):
            return None
        try:
            dyn = Dynamics.open(self.out / "score" / name)
        except DataPruneError:
            return None
        if dyn.fingerprint != cell.get("fingerprint") or not set(self.signals()) <= set(dyn.signals):
            return None
        return cell

    def run_scoring(self) -> None:
        for scorer in self.subsets.scorers if self.subsets else ():
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
                    "key": self.subsets.score_key(scorer, run), "seconds": result.seconds,
                    "fingerprint": dyn.fingerprint, "signals": dyn.signals, "run_dir": f"score/{name}"})
                self.log(f"scoring run {name} done in {result.seconds:.0f} s")

    def dynamics(self, sel: Selector) -> list[Dynamics]:
        scorer = self.subsets.scorer(sel.scorer)
        runs = sel.runs if sel.runs is not None else range(scorer.runs)
        return [Dynamics.open(self.out / "score" / scorer.run_names()[i]) for i in runs]

    def scoring_seconds(self, scorer: Scorer, runs: tuple[int, ...] | None = None) -> float:
        total = 0.0
        for i in (runs if runs is not None else range(scorer.runs)):
            cell = read_cell(self.score_cell_path(scorer.run_names()[i]))
            total += float(cell["seconds"]) if cell else math.nan
        return total

    # --- keep files (subset studies) ---------------------------------------------------------
    def keep_path(self, sel: Selector, ratio: float) -> Path:
        return self.out / keep_relpath(sel, ratio)

    def error_path(self, sel: Selector) -> Path:
        return self.out / "keep" / slug(sel.scorer) / f"{sel.slug}.error.json"

    def keep_done(self, sel: Selector, ratio: float) -> dict[str, Any] | None:
        path = self.keep_path(sel, ratio)
        manifest = read_cell(manifest_path(path))
        if manifest is None or not path.exists() or manifest.get("key") != norm(self.subsets.keep_key(sel, ratio)):
            return None
        try:
            if int64_digest(read_keep(path)) != manifest.get("sha"):
                return None
        except DataPruneError:
            return None
        prints = [d.fingerprint for d in self.dynamics(sel)]
        return manifest if manifest.get("store_fingerprints") == prints else None

    def skipped(self) -> dict[str, str]:
        """``{label: error}`` of the methods whose selection failed (their ``.error.json``)."""
        if not self.subsets:
            return {}
        return {s.label: read_json(self.error_path(s)).get("error", "?")
                for s in self.subsets.selectors if self.error_path(s).exists()}

    def run_selection(self) -> dict[str, str]:
        """Write every missing keep file; returns ``{label: error}`` for methods that failed."""
        config = self.subsets
        if config is None:
            return {}
        for sel in config.selectors:
            todo = [r for r in config.prune_ratios if not self.keep_done(sel, r)]
            if not todo:
                continue
            dyns = self.dynamics(sel)
            t0 = time.perf_counter()
            try:
                per_run = [score(sel.method, d, **sel.param_dict()) for d in dyns]
            except (DataPruneError, FileNotFoundError) as e:
                msg = " ".join(str(e).split())
                atomic_write_json(self.error_path(sel), {"label": sel.label, "error": msg})
                _log.warning(f"warning: method {sel.label!r} skipped: {msg}")
                continue
            scores = _mean_over_runs(per_run)
            seconds = time.perf_counter() - t0
            self.error_path(sel).unlink(missing_ok=True)
            atomic_save_npy(self.out / "keep" / slug(sel.scorer) / f"{sel.slug}.scores.npy", scores)
            n = len(scores)
            nan = int(np.isnan(scores).sum())
            if nan:
                _log.warning(f"warning: {sel.label}: {nan} of {n} scores are NaN; they are pruned first")
            for r in todo:
                rule = rule_for(sel.selection, r, sel.param_dict(), class_balanced=config.class_balanced)
                keep = select_by_rule(scores, rule, r, inputs=rule_inputs(rule, dyns)).keep
                manifest = keep_manifest(
                    sel.method, sel.param_dict(), r, n, dataset=config.dataset, selection=dict(sel.selection),
                    labels=dyns[0].labels, data_dir=self.spec.data_dir, key=config.keep_key(sel, r), label=sel.label,
                    scorer=sel.scorer, runs=[str(d.path.parent.relative_to(self.out)) for d in dyns],
                    store_fingerprints=[d.fingerprint for d in dyns], nan_scores=nan, selection_seconds=seconds,
                    class_balanced=config.class_balanced, sha=int64_digest(keep))
                if config.label_noise > 0:
                    self.data  # noqa: B018  (loads the noise mask)
                    manifest["noisy_removed_share"] = noisy_removed_share(keep, self.is_noisy)
                write_keep(self.keep_path(sel, r), keep, manifest, force=True)
        return self.skipped()

    # --- cells -------------------------------------------------------------------------------
    def cell_key(self, cell: TrainCell) -> dict[str, Any]:
        return norm(self.config.cell_key(cell))

    def cell_done(self, cell: TrainCell) -> dict[str, Any] | None:
        got = read_cell(self.out / cell.relpath())
        if got is None or got.get("key") != self.cell_key(cell):
            return None
        if cell.selector is not None:
            manifest = read_cell(manifest_path(self.keep_path(cell.selector, cell.prune_ratio)))
            if manifest is None or got.get("keep_sha") != manifest.get("sha"):
                return None
        return got

    def epochs_for(self, kept: int) -> int:
        """Training epochs of a subset of ``kept`` samples under the subset budget."""
        cfg = self.subsets
        if cfg.subset_budget == "epochs":
            return cfg.train_epochs
        n = len(self.data.train_y)
        full_steps = cfg.train_epochs * math.ceil(n / cfg.batch_size)
        return max(1, round(full_steps / math.ceil(kept / cfg.batch_size)))

    def train_epochs(self, cell: TrainCell) -> int:
        """E of the full run ``cell`` is measured against."""
        return cell.epochs if cell.epochs is not None else self.subsets.train_epochs

    def ood_images(self) -> torch.Tensor:
        if self._ood is None:
            from .ood import load_ood
            x = self.data.train_x
            self._ood = load_ood(self.subsets.ood_dataset, size=x.shape[-1], channels=x.shape[1])
        return self._ood

    def evaluate_ood(self, model: torch.nn.Module, data: Data) -> dict[str, Any]:
        from .ood import max_softmax, msp_aupr
        msp_in = max_softmax(model, data.test_x, data.mean, data.std)
        msp_out = max_softmax(model, self.ood_images(), data.mean, data.std)
        return {"ood_aupr": msp_aupr(msp_in, msp_out), "ood_dataset": self.subsets.ood_dataset,
                "ood_chance": len(msp_out) / (len(msp_in) + len(msp_out))}

    def _extra(self) -> Callable[[torch.nn.Module, Data], dict[str, Any]] | None:
        return self.evaluate_ood if self.subsets and self.subsets.ood_dataset else None

    def _cfg(self, cell: TrainCell, epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=self.config.batch_size, lr=self.config.lr, seed=cell.seed)

    def run_cell(self, cell: TrainCell) -> dict[str, Any]:
        """Train ``cell`` and write its JSON; returns it."""
        extra: dict[str, Any] = {}
        if cell.kind in (BASELINE, "one-run"):
            metrics = self._run_in_folder(cell)
        else:
            subset = None
            if cell.selector is not None:
                path = self.keep_path(cell.selector, cell.prune_ratio)
                subset = read_keep(path, len(self.data.train_y), labels=self.data.train_y.numpy())
                extra["keep_sha"] = read_json(manifest_path(path)).get("sha")
            kept = len(self.data.train_y) if subset is None else len(subset)
            metrics = train_run(self.spec, model=cell.train_model, cfg=self._cfg(cell, self.epochs_for(kept)),
                                subset=subset, data=self.data, progress=self.progress,
                                evaluate_extra=self._extra())
        result = {"key": self.cell_key(cell), **extra, "metrics": metrics,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(self.out / cell.relpath(), result)
        return result

    def _run_in_folder(self, cell: TrainCell) -> dict[str, Any]:
        """A one-run cell (``dataprune train --prune-at`` / ``--dynamic``) or a matched-compute
        baseline cell (``dataprune train --budget B``: all data, ``round(B x`` the full run's
        optimizer steps``)``, warm-up + cosine compressed to them) in its run folder under
        ``runs/``, resumed from its last finished epoch when the folder holds this very run
        (same model, training settings, plan, budget and training labels), else started over."""
        run_dir = self.out / cell.run_relpath()
        cfg = self._cfg(cell, self.train_epochs(cell))
        plan = cell.variant.plan() if cell.variant is not None else PrunePlan()
        want = norm({"model": cell.train_model, "train": cfg.to_dict(),
                     "plan": plan.resolved(cfg.epochs, cfg.seed).to_dict(), "budget": cell.budget,
                     "train_labels_digest": labels_digest(self.data.train_y)})
        stored = read_cell(run_dir / "config.json")
        if stored is not None and {k: stored.get(k) for k in want} == want:
            return resume_run(run_dir, data=self.data, progress=self.progress)
        return start_run(run_dir, self.spec, model=cell.train_model, cfg=cfg, plan=plan, budget=cell.budget,
                         data=self.data, force=True, progress=self.progress)

    def pending(self, skipped: dict[str, str]) -> list[TrainCell]:
        return [c for c in self.config.train_cells()
                if (c.selector is None or c.selector.label not in skipped) and not self.cell_done(c)]

    def units(self, cell: TrainCell) -> float:
        """Sample-epochs of ``cell`` (what training time scales with), for the ETA."""
        n = len(self.data.train_y)
        if cell.kind == "subset":
            kept = n - round_half_up(cell.prune_ratio * n)
            return kept * self.epochs_for(kept)
        return n * self.train_epochs(cell) * (cell.budget if cell.budget is not None else 1.0)

    def run_training(self, skipped: dict[str, str], cells: list[TrainCell] | None = None,
                     max_cells: int | None = None, after_cell: Callable[[], Any] | None = None) -> int:
        """Train the pending cells (or ``cells``), one progress line each; returns how many ran."""
        todo = self.pending(skipped) if cells is None else [c for c in cells if not self.cell_done(c)]
        if max_cells is not None:
            todo = todo[:max_cells]
        spent: dict[str, list[float]] = {}  # train model -> [seconds, units] so far
        t0 = time.perf_counter()
        for i, cell in enumerate(todo, 1):
            t_cell = time.perf_counter()
            result = self.run_cell(cell)
            acc = spent.setdefault(cell.train_model, [0.0, 0.0])
            acc[0] += time.perf_counter() - t_cell
            acc[1] += self.units(cell)
            eta = _eta(todo[i:], self.units, spent)
            m = result["metrics"]
            ood = f"  OOD AUPR {100 * m['ood_aupr']:.2f} %" if "ood_aupr" in m else ""
            what = describe(cell)
            arm = f" E={cell.epochs}" if cell.epochs is not None else ""
            samples = m.get("num_samples" if cell.kind == BASELINE else "train_samples", "?")
            self.log(f"[{i}/{len(todo)}] {cell.train_model}{arm} seed {cell.seed} {what}: test acc "
                     f"{100 * m['test_accuracy']:.2f} %{ood} ({samples} samples, "
                     f"{m['epochs']} epochs, {m['seconds']:.0f} s)  elapsed {_hms(time.perf_counter() - t0)}  "
                     f"ETA {_hms(eta)}")
            if after_cell is not None:
                after_cell()
        return len(todo)

    # --- rows --------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per finished cell of the config, the same fields in every study (see
        :data:`~dataprune.bench.tables.FIELDS`), with the deltas vs the full run and vs the
        matched-compute baseline of the same train model, E and seed."""
        rows = [self.row(cell, got) for cell in self.config.train_cells()
                if (got := self.cell_done(cell)) is not None]
        return add_deltas(rows)

    def row(self, cell: TrainCell, got: dict[str, Any]) -> dict[str, Any]:
        m, cfg = got["metrics"], self.config
        e_full = self.train_epochs(cell)
        row: dict[str, Any] = {k: "" for k in FIELDS}
        row |= {
            "study": cfg.study, "dataset": cfg.dataset, "label_noise": cfg.label_noise,
            "imbalance": cfg.imbalance, "kind": cell.kind, "method": cell.method, "method_name": cell.kind,
            "family": cell.kind, "params": "", "prune_ratio": cell.prune_ratio,
            "compute_budget": cell.budget if cell.budget is not None else "",
            "train_model": cell.train_model, "train_epochs": e_full, "seed": cell.seed,
            "test_accuracy": m["test_accuracy"], "train_samples": m.get("train_samples", ""),
            "epochs": m["epochs"], "optimizer_steps": m.get("optimizer_steps", ""),
            "sample_passes": m.get("sample_passes", ""), "full_equivalent": m.get("full_equivalent", ""),
            "train_seconds": m["seconds"], "cpu_seconds": m.get("cpu_seconds", ""),
            "ood_aupr": m.get("ood_aupr", ""), "ood_chance": m.get("ood_chance", ""),
            "cost": {FULL: 1.0, BASELINE: cell.budget}.get(cell.kind, m.get("full_equivalent", ""))}
        if cell.kind == BASELINE:  # all data (its last epoch may be partial)
            row["train_samples"] = m.get("num_samples", "")
        if cell.kind == "subset":  # per-training cost of the subset: (1 - r) of the samples, E' / E epochs
            sel = cell.selector
            scorer = self.subsets.scorer(sel.scorer)
            manifest = read_cell(manifest_path(self.keep_path(sel, cell.prune_ratio))) or {}
            row.update(method_name=sel.method, family=sel.method, params=json.dumps(sel.param_dict(), sort_keys=True),
                       scorer=sel.scorer, score_model=scorer.model, score_epochs=scorer.epochs,
                       record_view=scorer.record_view,
                       score_runs=len(sel.runs) if sel.runs is not None else scorer.runs,
                       noisy_removed_share=manifest.get("noisy_removed_share", ""),
                       score_seconds=self.scoring_seconds(scorer, sel.runs),
                       selection_seconds=manifest.get("selection_seconds", ""),
                       cost=(1 - cell.prune_ratio) * m["epochs"] / e_full)
        if cell.kind == "one-run":
            v = cell.variant
            row.update(kind=FULL if v.family == FULL else cell.kind,  # the study's full run, in its run folder
                       method_name=v.method or v.family, family=v.family,
                       params=json.dumps({k: x for k, x in m["plan"]["params"].items() if k != "seed"}, sort_keys=True),
                       prune_at="" if v.prune_at is None else v.prune_at, record_every=v.record_every,
                       dynamic=v.dynamic or "", selection_seconds=m.get("selection_seconds", 0.0))
        if self.subsets is not None:
            row["subset_budget"] = self.subsets.subset_budget
        return row


def describe(cell: TrainCell) -> str:
    """``cell``'s subset in words, for progress lines."""
    if cell.kind == "subset":
        return f"{cell.method} r={cell.prune_ratio:g}"
    if cell.kind == BASELINE:
        return f"all data at cost {cell.budget:g}"
    return "full set" if cell.kind == FULL else cell.method


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

