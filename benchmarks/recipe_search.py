"""Search one-run pruning recipes against the matched-compute baseline (issue 17).

One call trains every (regime, seed, recipe) not yet in ``--out`` (a JSON-lines file, one
line per finished training: resumable) and, with ``--report``, writes the markdown tables.

Regimes (Fashion-MNIST, first ``--limit`` training samples, the full clean test set):
``clean``; ``noise20`` / ``noise40`` (symmetric label noise, noise seed 0, the same flips
for every training seed); ``lt10`` (long-tailed: class c keeps round(n_min * 10^(-c/(C-1)))
samples, a subset seeded by 0).

Recipes (``--recipes``, cost c = sample passes / (E x N), target ``-c`` default 0.75):

- ``base-c0.75``: all data for round(c x E x batches per epoch) optimizer steps, warm-up
  (one epoch of steps) + cosine compressed to exactly those steps (the last epoch partial):
  the matched-compute baseline. ``base-c1.0`` is the full run.
- ``el2n-T3`` (any registered method that scores from recorded signals: el2n, dyn-unc,
  aum, forgetting): epochs 0..T-1 on all data, recording the train view; then the
  N - round(r N) highest-scoring samples for the other epochs, r chosen so that the cost is
  c: r = (1 - c) E / (E - T - A). The LR follows the library's ProgressSchedule (as
  ``dataprune train --prune-at``).
- ``-two0.1`` / ``-twoauto``: two-sided. First the ``beta`` N samples most likely
  mislabeled are dropped (lowest mean labelled-class probability over recordings 1..T-1,
  all when T = 1), then the easiest of the rest by the method's score, r N in all
  (beta capped at r). ``auto``: beta = rho_hat, the share of samples whose mean labelled-class
  probability is below 1/C (the model, before it memorises, puts less than chance on the
  label: it confidently predicts another class). ``gate``: beta = rho_hat if rho_hat >= 0.1,
  else 0 (one-sided); ``gate1.25``: 1.25 x rho_hat when gated.
- ``-ann2``: the last A = 2 epochs on all data (InfoBatch's annealing); ``-ann2x``: on all
  data except the suspects of the two-sided rule.
- ``oracle-T5-twoauto``: a diagnostic ceiling, not a recipe: the suspects are exactly the
  flipped labels (beta = the true noise rate), the easy side el2n's.
- ``-r0.2``: remove this share in all (instead of the share the cost implies).
- ``-steps``: the baseline's step budget and compressed schedule instead of E epochs with
  the progress schedule: the T epochs on all data, then the kept set until round(c E B)
  steps are spent (B batches per full epoch). The removed share defaults to 0 there (with
  ``-two``: only the suspects), so ``el2n-T3-steps`` trains exactly as ``base-c0.75``.

Example (the screen of benchmarks/results/recipe_search.md):
    PYTHONPATH=src python benchmarks/recipe_search.py --regimes clean noise20 --model mlp \
        --epochs 15 --seeds 0 --limit 20000 --recipes base-c0.75 el2n-T3 el2n-T3-twoauto \
        --out benchmarks/results/recipe_search/mlp.jsonl --threads 1
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

import dataprune as dp
from dataprune.bench.noise import noisy_removed_share, symmetric_label_noise
from dataprune.train.data import ImageData, load_dataset
from dataprune.train.loop import ProgressSchedule, TrainConfig, make_optimizer, seed_everything, train
from dataprune.train.models import build_model
from dataprune.train.prune_at import resolve_method_params
from dataprune.train.runs import evaluate_data, run_loader

REGIMES = ("clean", "noise20", "noise40", "lt10", "lt100")
SIGNALS = ("prob", "correct", "margin", "el2n")
#: diagnostic recipe name: el2n's easy side, the true flipped labels as the suspects
ORACLE = "oracle"
#: ``-twogate``: drop the suspects only when rho_hat says the labels are noisy
NOISE_GATE = 0.1


# ---------------------------------------------------------------- data regimes
def load_regime(regime: str, limit: int | None) -> tuple[ImageData, np.ndarray]:
    """The regime's training data and its (N,) bool mask of flipped labels."""
    data = load_dataset("fashion-mnist", limit=limit)
    assert isinstance(data, ImageData)
    y = data.train_y.numpy()
    noisy = np.zeros(len(y), dtype=bool)
    if regime.startswith("noise"):
        flipped, noisy = symmetric_label_noise(y, int(regime[5:]) / 100, data.num_classes, seed=0)
        data = dataclasses.replace(data, train_y=torch.from_numpy(flipped))
    elif regime.startswith("lt"):
        imb, c = int(regime[2:]), data.num_classes
        n_min = np.bincount(y, minlength=c).min()
        rng = np.random.default_rng(0)
        keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == k), round(n_min * imb ** (-k / (c - 1))),
                                                  replace=False) for k in range(c)]))
        data = dataclasses.replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep])
        noisy = np.zeros(len(keep), dtype=bool)
    elif regime != "clean":
        raise SystemExit(f"regime {regime!r}; expected one of {REGIMES}")
    return data, noisy


# ---------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """A parsed recipe name (see the module docstring)."""

    name: str
    cost: float = 0.75
    method: str | None = None   # None: the matched-compute baseline
    prune_at: int = 0
    beta: float | str = 0.0     # two-sided: share dropped as likely mislabeled, or "auto"
    ratio: float | None = None  # share removed in all (None: from the cost, or 0 with -steps)
    anneal: int = 0             # last epochs on all data
    anneal_excludes_suspects: bool = False
    steps: bool = False         # step budget + compressed schedule (as the baseline)

    @classmethod
    def parse(cls, name: str) -> "Recipe":
        m = re.fullmatch(r"base-c([\d.]+)", name)
        if m:
            return cls(name, cost=float(m[1]), steps=True)
        m = re.fullmatch(r"([a-z0-9-]+?)-T(\d+)(?:-two(auto|gate[\d.]*|[\d.]+))?(?:-r([\d.]+))?(?:-ann(\d+)(x?))?(-steps)?"
                         r"(?:-c([\d.]+))?", name)
        if not m or (m[7] and m[5]):
            raise SystemExit(f"recipe {name!r}; expected base-cC or "
                             "METHOD-T<T>[-two<auto|B>][-r<R>][-ann<A>[x] | -steps][-cC]")
        beta = m[3] if m[3] and m[3][0] in "ag" else float(m[3] or 0)
        return cls(name, cost=float(m[8] or 0.75), method=m[1], prune_at=int(m[2]), beta=beta,
                   ratio=None if m[4] is None else float(m[4]), anneal=int(m[5] or 0),
                   anneal_excludes_suspects=bool(m[6]), steps=bool(m[7]))

    def prune_ratio(self, epochs: int) -> float:
        """The share removed: given, 0 with -steps, else r such that T + A full epochs and
        E - T - A epochs on (1 - r) N cost c: r = (1 - c) E / (E - T - A)."""
        if self.ratio is not None or self.steps:
            return self.ratio or 0.0
        left = epochs - self.prune_at - self.anneal
        r = (1 - self.cost) * epochs / left if left > 0 else math.inf
        if not 0 < r < 1:
            raise SystemExit(f"recipe {self.name!r} with {epochs} epochs: cost {self.cost} needs a prune "
                             f"ratio {r:.3g}; expected one in (0, 1)")
        return r


def mislabel_evidence(dyn: Any, num_classes: int) -> tuple[np.ndarray, dict[str, float]]:
    """(N,) mean labelled-class probability over recordings 1..K-1 (all if K = 1; low =
    likely mislabeled), and noise-rate estimates from it and from ``correct``."""
    prob = np.asarray(dyn["prob"], dtype=np.float64)
    p = prob[1:].mean(0) if len(prob) > 1 else prob[0]
    correct = np.asarray(dyn["correct"], dtype=np.float64)
    est = {"rho_chance": float((p < 1 / num_classes).mean()),
           "rho_half_chance": float((p < 0.5 / num_classes).mean()),
           "wrong_last": float(1 - correct[-1].mean()),
           "never_correct": float((correct.max(0) == 0).mean())}
    return p, est


def two_sided_keep(easy_score: np.ndarray, p_label: np.ndarray, ratio: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep indices (ascending) and suspect indices of the two-sided rule.

    Drops round(min(beta, r) N) samples with the lowest ``p_label`` (likely mislabeled; ties
    by index), then, of the rest, the lowest ``easy_score`` (higher = worth keeping) until
    round(r N) are dropped in all.
    """
    n = len(p_label)
    n_drop = int(math.floor(ratio * n + 0.5))
    n_sus = min(n_drop, int(math.floor(min(beta, ratio) * n + 0.5)))
    suspects = np.argsort(p_label, kind="stable")[:n_sus]
    score = np.asarray(easy_score, dtype=np.float64).copy()
    score[np.isnan(score)] = -np.inf
    score[suspects] = np.inf            # already gone; keep them out of the easy side
    easy = np.argsort(score, kind="stable")[:n_drop - n_sus]
    mask = np.ones(n, dtype=bool)
    mask[suspects] = False
    mask[easy] = False
    return np.flatnonzero(mask), np.sort(suspects)


# ---------------------------------------------------------------- training
class Capped:
    """A batch source that ends the run after ``total`` batches (the last epoch partial)."""

    def __init__(self, loader: Any, total: int) -> None:
        self.loader, self.left = loader, total

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return min(len(self.loader), self.left)

    def __iter__(self) -> Iterator[Any]:
        for batch in itertools.islice(iter(self.loader), len(self)):
            self.left -= 1
            yield batch

    def clean(self, idx: torch.Tensor) -> torch.Tensor:
        return self.loader.clean(idx)


def step_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """make_optimizer's warm-up + cosine, as a function of the step s over exactly ``steps``:
    (s + 1) / (W + 1) for s < W, then 0.5 (1 + cos(pi (s - W) / (S - W)))."""
    w = min(warmup, steps - 1)

    def factor(s: int) -> float:
        return (s + 1) / (w + 1) if s < w else 0.5 * (1 + math.cos(math.pi * (s - w) / max(1, steps - w)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_one(data: ImageData, noisy: np.ndarray, model: str, epochs: int, seed: int, recipe: Recipe) -> dict[str, Any]:
    """Train once under ``recipe``; returns the result row (without the run's key).

    Progress mode (``dataprune train --prune-at``): E epochs, the LR a function of epoch
    progress. Step mode (the baseline, ``-steps``): round(c E B) optimizer steps (B batches
    per full epoch), warm-up + cosine over exactly those steps; epochs go on, on whatever
    set is active, until the steps are spent.
    """
    cfg = TrainConfig(epochs=epochs, seed=seed)
    n = len(data.train_y)
    seed_everything(seed)
    net = build_model(model, data.num_classes, data.in_channels, data.image_size)
    loader = run_loader(data, cfg, model)
    full = loader.indices
    per_epoch = len(loader)
    optimizer, _ = make_optimizer(net, cfg, per_epoch)
    schedule: Any
    if recipe.steps:
        total = round(recipe.cost * epochs * per_epoch)
        source: Any = Capped(loader, total)
        schedule = step_schedule(optimizer, total, int(cfg.warmup_epochs * per_epoch))
    else:
        source, schedule = loader, ProgressSchedule(optimizer, cfg)
    t, a = recipe.prune_at, recipe.anneal
    extra: dict[str, Any] = {}
    passes, steps, epoch = 0, 0, 0
    keep = anneal_set = full
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recipe_") as tmp:
        recorder = None
        if recipe.method is not None and t > 0:
            recorder = dp.Recorder(n, Path(tmp) / "dyn", data.num_classes, signals=SIGNALS, epochs=t,
                                   view="train", labels=data.train_y.numpy(), force=True)
        while (source.left > 0) if recipe.steps else (epoch < epochs):
            if recipe.method is not None and epoch == t:
                keep, anneal_set = prune(recipe, Path(tmp) / "dyn", recorder, data, noisy, epochs, seed, extra)
                recorder = None
            loader.indices = full if epoch < t else (anneal_set if epoch >= epochs - a else keep)
            if not recipe.steps:
                schedule.start_epoch(epoch, len(loader))
            rows = train(net, source, cfg, recorder=recorder, record_view="train", optimizer=optimizer,
                         scheduler=schedule, start_epoch=epoch, stop_epoch=epoch + 1)
            passes += rows[0]["samples"]
            steps += math.ceil(rows[0]["samples"] / cfg.batch_size)
            epoch += 1
    seconds = time.perf_counter() - t0
    acc, _ = evaluate_data(net, data)
    return {"cost": passes / (epochs * n), "test_accuracy": 100 * acc, "seconds": seconds,
            "optimizer_steps": steps, "epochs_run": epoch, "num_samples": n, **extra}


def prune(recipe: Recipe, store: Path, recorder: Any, data: ImageData, noisy: np.ndarray, epochs: int, seed: int,
          extra: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Score the T recorded epochs and apply the (two-sided) rule: (keep, anneal set) indices;
    what was decided goes into ``extra``."""
    assert recipe.method is not None
    n = len(data.train_y)
    if recorder is None:  # T = 0: methods that read no signal (random)
        scores, p_label, est = dp.score(recipe.method, _Size(n), seed=seed), np.ones(n), {}
    else:
        recorder.close()
        dyn = dp.Dynamics.open(store)
        method = "el2n" if recipe.method == ORACLE else recipe.method
        scores = dp.score(method, dyn, **resolve_method_params(method, recipe.prune_at, seed=seed))
        p_label, est = mislabel_evidence(dyn, data.num_classes)
    rho = est.get("rho_chance", 0.0)
    if recipe.method == ORACLE:  # diagnostic ceiling: the truly flipped labels are the suspects
        p_label, rho = np.where(noisy, -1.0, p_label), float(noisy.mean())
    if isinstance(recipe.beta, str):  # auto: rho_hat; gateM: M x rho_hat if rho_hat >= the gate, else 0
        scale = float(recipe.beta[4:] or 1) if recipe.beta.startswith("gate") else 1.0
        beta = min(1.0, scale * rho) if recipe.beta == "auto" or rho >= NOISE_GATE else 0.0
    else:
        beta = recipe.beta
    ratio = max(recipe.prune_ratio(epochs), beta)
    keep, suspects = two_sided_keep(scores, p_label, ratio, beta)
    mask = np.ones(n, dtype=bool)
    mask[suspects] = False
    extra.update(est, prune_ratio=ratio, beta=beta, kept=int(len(keep)),
                 noisy_removed_share=noisy_removed_share(keep, noisy) if noisy.any() and len(keep) < n else None,
                 noisy_kept_share=float(noisy[keep].mean()) if noisy.any() else None)
    full = torch.arange(n)
    anneal_set = torch.from_numpy(np.flatnonzero(mask)) if recipe.anneal_excludes_suspects else full
    return torch.from_numpy(keep), anneal_set


@dataclass
class _Size:
    """Stands in for a store when a method reads no signal (random at T = 0)."""

    num_samples: int


# ---------------------------------------------------------------- driver
def key(row: dict[str, Any]) -> tuple:
    return (row["regime"], row["model"], row["epochs"], row["limit"], row["seed"], row["recipe"])


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_all(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {key(r): r for r in read_rows(out)}
    deadline = dt.datetime.fromisoformat(args.deadline) if args.deadline else None
    recipes = [Recipe.parse(r) for r in args.recipes]
    for regime in args.regimes:
        data, noisy = load_regime(regime, args.limit)
        for seed, recipe in itertools.product(args.seeds, recipes):
            k = (regime, args.model, args.epochs, args.limit, seed, recipe.name)
            if k in done:
                continue
            longest = max((r["seconds"] for r in done.values() if r["model"] == args.model
                           and r["epochs"] == args.epochs and r["regime"] == regime), default=0.0)
            if deadline and dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.2 * longest) > deadline:
                print(f"skip {k}: would end after the deadline {deadline}", flush=True)
                continue
            row = {"regime": regime, "model": args.model, "epochs": args.epochs, "limit": args.limit,
                   "seed": seed, "recipe": recipe.name,
                   **run_one(data, noisy, args.model, args.epochs, seed, recipe)}
            done[k] = row
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{regime} {args.model} seed {seed} {recipe.name}: cost {row['cost']:.3f} "
                  f"acc {row['test_accuracy']:.2f} ({row['seconds']:.0f}s)", flush=True)


# ---------------------------------------------------------------- report
def report(paths: list[Path], baseline: str = "base-c0.75", full: str = "base-c1.0") -> str:
    """Markdown tables: per (regime, model), each recipe's cost, accuracy mean ± std over
    seeds, and the mean ± std over seeds of (recipe - the same seed's baseline) and - full."""
    rows = [r for p in paths for r in read_rows(p)]
    out = []
    groups = sorted({(r["regime"], r["model"], r["epochs"], r["limit"]) for r in rows},
                    key=lambda g: (REGIMES.index(g[0]) if g[0] in REGIMES else 99, g[1:]))
    for g in groups:
        rs = [r for r in rows if (r["regime"], r["model"], r["epochs"], r["limit"]) == g]
        by = {(r["recipe"], r["seed"]): r for r in rs}
        out.append(f"\n### {g[0]}, {g[1]} E={g[2]}, first {g[3]} samples (N = {rs[0]['num_samples']})\n")
        out.append("| recipe | cost | seeds | test top-1 | Δ vs matched baseline | Δ vs full | removed noisy share | beta |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        names = sorted({r["recipe"] for r in rs}, key=lambda name: -np.mean(
            [r["test_accuracy"] for r in rs if r["recipe"] == name]))
        for name in names:
            mine = sorted((r for r in rs if r["recipe"] == name), key=lambda r: r["seed"])
            acc = np.array([r["test_accuracy"] for r in mine])

            def delta(ref: str) -> str:
                d = np.array([r["test_accuracy"] - by[(ref, r["seed"])]["test_accuracy"]
                              for r in mine if (ref, r["seed"]) in by])
                if not len(d):
                    return "–"
                return f"{d.mean():+.2f}" + (f" ± {d.std(ddof=1):.2f} (n={len(d)})" if len(d) > 1 else "")
            share = [r.get("noisy_removed_share") for r in mine if r.get("noisy_removed_share") is not None]
            beta = [r.get("beta") for r in mine if r.get("beta") is not None]
            out.append(f"| {name} | {np.mean([r['cost'] for r in mine]):.3f} | {len(mine)} | {acc.mean():.2f}"
                       + (f" ± {acc.std(ddof=1):.2f}" if len(acc) > 1 else "")
                       + f" | {delta(baseline)} | {delta(full)} | "
                       + (f"{100 * np.mean(share):.0f} %" if share else "–") + " | "
                       + (f"{np.mean(beta):.3f}" if beta else "–") + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regimes", nargs="+", default=["clean"], choices=REGIMES)
    p.add_argument("--model", default="mlp")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--limit", type=int, default=20000)
    p.add_argument("--recipes", nargs="+", default=["base-c0.75", "base-c1.0"])
    p.add_argument("--out", default="benchmarks/results/recipe_search/mlp.jsonl")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--deadline", help="ISO time (UTC, e.g. 2026-12-02T16:25+00:00): start no run that would end after it")
    p.add_argument("--report", nargs="*", metavar="JSONL", help="print the tables of these results instead of training")
    args = p.parse_args(argv)
    if args.report is not None:
        sys.stdout.write(report([Path(x) for x in (args.report or [args.out])]))
        return
    torch.set_num_threads(args.threads)
    run_all(args)


if __name__ == "__main__":
    main()
