"""What a benchmark runs: scoring runs (scorers), subsets (selectors x prune ratios) and
training cells (subset x train model x seed, plus the full set), each with a key that says
exactly what it depends on, so a rerun can tell a finished cell from a stale one."""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from ..errors import DataPruneError
from ..select import check_ratio

BUDGETS = ("epochs", "iterations")
FULL = "full"
"""Method name of the full training set (prune ratio 0)."""


@dataclass(frozen=True)
class Scorer:
    """One scoring configuration: ``runs`` scoring runs of ``model`` for ``epochs`` epochs,
    seeds ``seed .. seed+runs-1``, written to ``BENCH/score/<id>[-run<i>]/``."""

    id: str
    model: str
    epochs: int
    record_view: str = "clean"
    runs: int = 1
    seed: int = 0

    def run_names(self) -> list[str]:
        return [self.id] if self.runs == 1 else [f"{self.id}-run{i}" for i in range(self.runs)]


@dataclass(frozen=True)
class Selector:
    """A subset rule: score with ``method`` (``params``) on scorer ``scorer``'s runs (all, or
    only ``runs``; several runs: the mean of their scores) and keep the highest."""

    label: str
    method: str
    scorer: str
    params: tuple[tuple[str, Any], ...] = ()
    runs: tuple[int, ...] | None = None
    selection: tuple[tuple[str, Any], ...] = ()
    """How the subset is drawn from the scores: () = keep the highest; ``(("rule", "beta"), ...)``
    DUAL's Beta sampling; ``(("rule", "ccs"), ...)`` CCS; see :mod:`dataprune.bench.selection`."""

    @property
    def slug(self) -> str:
        return slug(self.label)

    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "_"


def ratio_name(r: float) -> str:
    return f"r{r:g}"


@dataclass
class BenchConfig:
    """Everything a benchmark depends on. ``fixed()`` must match to resume into a folder;
    the lists (selectors, ratios, train models, seeds) may grow between invocations."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    limit: int | None = None
    scorers: list[Scorer] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=list)
    prune_ratios: list[float] = field(default_factory=lambda: [0.25, 0.3, 0.4, 0.5])
    train_models: list[str] = field(default_factory=lambda: ["small-cnn"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train_epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    budget: str = "epochs"
    label_noise: float = 0.0
    noise_seed: int = 0
    ood_dataset: str | None = None
    class_balanced: bool = False
    full: bool = True
    study: str = "main"

    def validate(self) -> None:
        if not self.scorers:
            raise DataPruneError("no scoring model given; expected at least one --score-model")
        if not self.selectors:
            raise DataPruneError("no method given; expected at least one in --methods")
        ids = [s.id for s in self.scorers]
        if len(set(ids)) != len(ids):
            raise DataPruneError(f"scorer ids {ids} repeat; expected each once")
        for s in self.scorers:
            if s.epochs < 2:
                raise DataPruneError(f"scoring epochs {s.epochs} for {s.id!r}; expected at least 2")
            if s.runs < 1:
                raise DataPruneError(f"--score-runs {s.runs}; expected at least 1")
        labels = [(s.scorer, s.label) for s in self.selectors]
        if len(set(labels)) != len(labels):
            raise DataPruneError(f"method labels repeat: {labels}")
        for s in self.selectors:
            if self.class_balanced and dict(s.selection).get("rule") == "beta":
                raise DataPruneError(f"method {s.label!r}: Beta sampling is not class-balanced; "
                                     "drop --class-balanced or the +beta variant")
            if s.scorer not in ids:
                raise DataPruneError(f"method {s.label!r} uses unknown scorer {s.scorer!r}; expected one of {ids}")
        if not self.prune_ratios:
            raise DataPruneError("no prune ratio given; expected at least one in --prune-ratios")
        for r in self.prune_ratios:
            check_ratio(r)
            if r == 0:
                raise DataPruneError("prune ratio 0 is the full set (always trained); expected ratios in (0, 1)")
        if not self.train_models:
            raise DataPruneError("no train model given; expected at least one in --train-models")
        if not self.seeds:
            raise DataPruneError("--seeds 0; expected at least one seed")
        if self.train_epochs < 1:
            raise DataPruneError(f"--train-epochs {self.train_epochs}; expected at least 1")
        if self.budget not in BUDGETS:
            raise DataPruneError(f"--budget {self.budget!r}; expected one of {BUDGETS}")
        if not 0.0 <= self.label_noise < 1.0 or math.isnan(self.label_noise):
            raise DataPruneError(f"--label-noise {self.label_noise}; expected a fraction in [0, 1)")

    # --- what must match to resume ---------------------------------------------------------
    def data_key(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "data_dir": self.data_dir, "limit": self.limit,
                "label_noise": self.label_noise, "noise_seed": self.noise_seed if self.label_noise else None}

    def train_key(self) -> dict[str, Any]:
        return {"train_epochs": self.train_epochs, "batch_size": self.batch_size, "lr": self.lr,
                "budget": self.budget, "ood_dataset": self.ood_dataset}

    def fixed(self) -> dict[str, Any]:
        return {**self.data_key(), **self.train_key(), "class_balanced": self.class_balanced,
                "scorers": {s.id: asdict(s) for s in self.scorers}}

    def scorer(self, scorer_id: str) -> Scorer:
        return next(s for s in self.scorers if s.id == scorer_id)

    # --- keys of the cells -----------------------------------------------------------------
    def score_key(self, scorer: Scorer, run: int) -> dict[str, Any]:
        return {**self.data_key(), "scorer": asdict(scorer), "run": run,
                "batch_size": self.batch_size, "lr": self.lr}

    def keep_key(self, sel: Selector, ratio: float) -> dict[str, Any]:
        key = {**self.data_key(), "scorer": asdict(self.scorer(sel.scorer)), "method": sel.method,
               "params": sel.param_dict(), "runs": list(sel.runs) if sel.runs is not None else None,
               "prune_ratio": ratio, "class_balanced": self.class_balanced,
               "batch_size": self.batch_size, "lr": self.lr}
        if sel.selection:  # absent for top-k: keys of earlier folders stay valid
            key["selection"] = dict(sel.selection)
        return key

    def train_cell_key(self, cell: "TrainCell") -> dict[str, Any]:
        key = {**self.data_key(), **self.train_key(), "train_model": cell.train_model, "seed": cell.seed}
        if cell.selector is not None:
            key["selection"] = self.keep_key(cell.selector, cell.prune_ratio)
        return key

    # --- enumeration -----------------------------------------------------------------------
    def train_cells(self) -> Iterator["TrainCell"]:
        """Seed-major order, so an interrupted bench has whole tables for its first seeds."""
        for seed in self.seeds:
            for model in self.train_models:
                if self.full:
                    yield TrainCell(None, 0.0, model, seed)
                for ratio in self.prune_ratios:
                    for sel in self.selectors:
                        yield TrainCell(sel, ratio, model, seed)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "BenchConfig":
        obj = dict(obj)
        obj["scorers"] = [Scorer(**s) for s in obj.get("scorers", [])]
        obj["selectors"] = [Selector(label=s["label"], method=s["method"], scorer=s["scorer"],
                                     params=tuple((k, v) for k, v in s.get("params", [])),
                                     runs=tuple(s["runs"]) if s.get("runs") is not None else None,
                                     selection=tuple((k, v) for k, v in s.get("selection", [])))
                            for s in obj.get("selectors", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in obj.items() if k in known})

    def merged_with(self, old: "BenchConfig") -> "BenchConfig":
        """This config with the lists of ``old`` (same fixed part) added, old entries first."""
        def union(a: list, b: list) -> list:
            return list(dict.fromkeys([*a, *b]))
        scorers = {s.id: s for s in old.scorers}
        scorers.update({s.id: s for s in self.scorers})
        return BenchConfig(**{**self.__dict__, "scorers": list(scorers.values()),
                              "selectors": union(old.selectors, self.selectors),
                              "prune_ratios": union(old.prune_ratios, self.prune_ratios),
                              "train_models": union(old.train_models, self.train_models),
                              "seeds": union(old.seeds, self.seeds),
                              "full": self.full or old.full})


@dataclass(frozen=True)
class TrainCell:
    """Train ``train_model`` with ``seed`` on the subset of ``selector`` at ``prune_ratio``
    (``selector`` None: the full set, ratio 0)."""

    selector: Selector | None
    prune_ratio: float
    train_model: str
    seed: int

    @property
    def method(self) -> str:
        return FULL if self.selector is None else self.selector.label

    def relpath(self) -> str:
        name = f"{slug(self.train_model)}-seed{self.seed}.json"
        if self.selector is None:
            return f"cells/{FULL}/{name}"
        return f"cells/{slug(self.selector.scorer)}/{self.selector.slug}/{ratio_name(self.prune_ratio)}/{name}"


def keep_relpath(sel: Selector, ratio: float) -> str:
    return f"keep/{slug(sel.scorer)}/{sel.slug}-{ratio_name(ratio)}.txt"


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values (for conflict errors)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} -> {b!r}"]
