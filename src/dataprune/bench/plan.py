"""What a benchmark runs. Every study is a configuration of one engine whose unit is the
**cell**: one training run (:class:`TrainCell`) with a key that says exactly what it depends
on (so a rerun can tell a finished cell from a stale one) and a metrics JSON. The main and
cost studies (:class:`BenchConfig`) add scoring runs (scorers) and subsets (selectors x prune
ratios); the one-run study is :class:`~dataprune.bench.one_run_study.OneRunConfig`. Both share
:class:`StudyConfig`: the data (and its regime: label noise, long tail), the optimizer
settings, the seeds, and the matched-compute baseline's budgets."""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from ..errors import DataPruneError
from ..select import check_ratio
from ..train.plan import PrunePlan

BUDGETS = ("epochs", "iterations")
FULL = "full"
"""Method name of the full training set (prune ratio 0)."""
BASELINE = "baseline"
"""Method name of the matched-compute baseline: all data, no pruning, ``compute_budget`` B of
the full training's optimizer steps with the schedule compressed to them."""


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


@dataclass(frozen=True)
class Variant:
    """One way of training once (one-run study): the full set (no plan), random from epoch 0,
    InfoBatch, or ``method`` scored on the first ``prune_at`` epochs recorded ``1/record_every``
    times each."""

    label: str
    method: str | None = None
    prune_at: int | None = None
    prune_ratio: float = 0.0
    record_every: float = 1.0
    dynamic: str | None = None

    @property
    def family(self) -> str:
        return self.dynamic or self.method or FULL

    def plan(self) -> PrunePlan:
        return PrunePlan(prune_at=self.prune_at, method=self.method, prune_ratio=self.prune_ratio,
                         record_every=self.record_every, dynamic=self.dynamic)


def union(a: list, b: list) -> list:
    """``a`` then the entries of ``b`` not in it, in order."""
    return list(dict.fromkeys([*a, *b]))


@dataclass
class StudyConfig:
    """What every study shares: the data and its regime, optimizer settings, seeds, and the
    budgets B of the matched-compute baseline cells (all data at cost B)."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    limit: int | None = None
    image_size: int | None = None
    """Image folders: the crop size every model trains on (None for IDX data)."""
    workers: int = 0
    """Image folders: DataLoader decoding processes (changes no result, so in no key)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    batch_size: int = 256
    lr: float = 0.1
    label_noise: float = 0.0
    noise_seed: int = 0
    imbalance: float = 1.0
    """Long-tailed regime: largest / smallest class count (1: the data as loaded)."""
    imbalance_seed: int = 0
    baseline_budgets: list[float] = field(default_factory=list)
    """Costs B of the matched-compute baseline cells (each: all data, round(B x full steps))."""

    def validate_common(self) -> None:
        if not self.seeds:
            raise DataPruneError("--seeds 0; expected at least one seed")
        if not 0.0 <= self.label_noise < 1.0 or math.isnan(self.label_noise):
            raise DataPruneError(f"--label-noise {self.label_noise}; expected a fraction in [0, 1)")
        if not (math.isfinite(self.imbalance) and self.imbalance >= 1):
            raise DataPruneError(f"--imbalance {self.imbalance}; expected a finite factor >= 1 (e.g. 10 or 100)")
        for b in self.baseline_budgets:
            if not 0 < b < 1:
                raise DataPruneError(f"baseline budget {b}; expected a cost in (0, 1) (1 is the full run)")

    def regime_key(self) -> dict[str, Any]:
        """The long-tail settings, only when used (keys of clean folders stay as they were)."""
        return {"imbalance": self.imbalance, "imbalance_seed": self.imbalance_seed} if self.imbalance != 1 else {}

    def regime(self) -> str:
        """The data regime in words, e.g. ``label noise 20%, long tail 10x``."""
        parts = [f"label noise {100 * self.label_noise:g}%"] if self.label_noise else []
        parts += [f"long tail {self.imbalance:g}x (seed {self.imbalance_seed})"] if self.imbalance != 1 else []
        return ", ".join(parts) or "clean"

    def baseline_key(self, cell: "TrainCell") -> dict[str, Any]:
        return {"compute_budget": cell.budget}


def matched_budgets(prune_ratios: list[float]) -> list[float]:
    """The baseline budget of each prune ratio r: 1 - r, the per-training cost of its subset."""
    return list(dict.fromkeys(round(1 - r, 6) for r in prune_ratios))


@dataclass
class BenchConfig(StudyConfig):
    """Everything a main or cost benchmark depends on. ``fixed()`` must match to resume into a
    folder; the lists (selectors, ratios, train models, seeds, baseline budgets) may grow
    between invocations."""

    scorers: list[Scorer] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=list)
    prune_ratios: list[float] = field(default_factory=lambda: [0.25, 0.3, 0.4, 0.5])
    train_models: list[str] = field(default_factory=lambda: ["small-cnn"])
    train_epochs: int = 10
    subset_budget: str = "epochs"
    """How long a subset trains: ``epochs`` (the same E as the full set, the paper) or
    ``iterations`` (as many optimizer steps as the full set)."""
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
        if self.train_epochs < 1:
            raise DataPruneError(f"--train-epochs {self.train_epochs}; expected at least 1")
        if self.subset_budget not in BUDGETS:
            raise DataPruneError(f"--subset-budget {self.subset_budget!r}; expected one of {BUDGETS}")
        self.validate_common()

    # --- what must match to resume ---------------------------------------------------------
    def data_key(self) -> dict[str, Any]:
        size = {"image_size": self.image_size} if self.image_size is not None else {}  # old keys unchanged
        return {"dataset": self.dataset, "data_dir": self.data_dir, "limit": self.limit, **size,
                "label_noise": self.label_noise, "noise_seed": self.noise_seed if self.label_noise else None,
                **self.regime_key()}

    def train_key(self) -> dict[str, Any]:
        # "budget": the subset budget's name in the keys of folders made before the rename
        return {"train_epochs": self.train_epochs, "batch_size": self.batch_size, "lr": self.lr,
                "budget": self.subset_budget, "ood_dataset": self.ood_dataset}

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

    def cell_key(self, cell: "TrainCell") -> dict[str, Any]:
        if cell.budget is not None:  # the subset budget does not concern the baseline
            train = {k: v for k, v in self.train_key().items() if k != "budget"}
            return {**self.data_key(), **train, "train_model": cell.train_model, "seed": cell.seed,
                    **self.baseline_key(cell)}
        key = {**self.data_key(), **self.train_key(), "train_model": cell.train_model, "seed": cell.seed}
        if cell.selector is not None:
            key["selection"] = self.keep_key(cell.selector, cell.prune_ratio)
        return key

    def arms(self) -> list[tuple[str, int]]:
        """(train model, epochs E of its full run) of every model trained."""
        return [(m, self.train_epochs) for m in self.train_models]

    # --- enumeration -----------------------------------------------------------------------
    def train_cells(self) -> Iterator["TrainCell"]:
        """Seed-major order, so an interrupted bench has whole tables for its first seeds:
        per seed and model the full set, the baselines (cheapest first), then the subsets."""
        for seed in self.seeds:
            for model in self.train_models:
                if self.full:
                    yield TrainCell(None, 0.0, model, seed)
                for b in sorted(self.baseline_budgets):
                    yield TrainCell(None, 0.0, model, seed, budget=b)
                for ratio in self.prune_ratios:
                    for sel in self.selectors:
                        yield TrainCell(sel, ratio, model, seed)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "BenchConfig":
        obj = dict(obj)
        if "budget" in obj:  # folders made before --budget became --subset-budget
            obj["subset_budget"] = obj.pop("budget")
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
        scorers = {s.id: s for s in old.scorers}
        scorers.update({s.id: s for s in self.scorers})
        return BenchConfig(**{**self.__dict__, "scorers": list(scorers.values()),
                              "selectors": union(old.selectors, self.selectors),
                              "prune_ratios": union(old.prune_ratios, self.prune_ratios),
                              "train_models": union(old.train_models, self.train_models),
                              "seeds": union(old.seeds, self.seeds),
                              "baseline_budgets": union(old.baseline_budgets, self.baseline_budgets),
                              "full": self.full or old.full})


@dataclass(frozen=True)
class TrainCell:
    """One training run of a study, the engine's unit: ``train_model`` with ``seed`` on

    - the subset of ``selector`` at ``prune_ratio`` (kind ``subset``), or
    - all data (``selector`` None, ratio 0; kind ``full``), or
    - all data for the cost ``budget`` B (kind ``baseline``: the matched-compute baseline), or
    - under one-run ``variant`` (kind ``one-run``: pruning inside the run, or its full run).

    ``epochs``: the full run's E where the study has several (one-run arms), else None.
    """

    selector: Selector | None
    prune_ratio: float
    train_model: str
    seed: int
    budget: float | None = None
    variant: Variant | None = None
    epochs: int | None = None

    @property
    def kind(self) -> str:
        if self.budget is not None:
            return BASELINE
        if self.variant is not None:
            return "one-run"
        return FULL if self.selector is None else "subset"

    @property
    def method(self) -> str:
        if self.budget is not None:
            return BASELINE
        if self.variant is not None:
            return self.variant.label
        return FULL if self.selector is None else self.selector.label

    def relpath(self) -> str:
        if self.epochs is not None:  # one-run layout: cells/<model>-E<E>/<variant>/seed<s>.json
            what = slug(self.variant.label) if self.variant is not None else f"{BASELINE}-B{self.budget:g}"
            return f"cells/{slug(self.train_model)}-E{self.epochs}/{what}/seed{self.seed}.json"
        name = f"{slug(self.train_model)}-seed{self.seed}.json"
        if self.budget is not None:
            return f"cells/{BASELINE}/B{self.budget:g}/{name}"
        if self.selector is None:
            return f"cells/{FULL}/{name}"
        return f"cells/{slug(self.selector.scorer)}/{self.selector.slug}/{ratio_name(self.prune_ratio)}/{name}"

    def run_relpath(self) -> str:
        """The run folder of a one-run cell (``runs/<model>-E<E>/<variant>/seed<s>``)."""
        return "runs/" + self.relpath()[len("cells/"):-len(".json")]


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
