"""results.csv / results.json rows and table.md of every study: the paper's layouts (Tables
2, 4, 6, 7) for the main and cost studies, the cost/accuracy table of the one-run study, and
in both the matched-compute baseline with Δ vs it (paired by seed) beside Δ vs full."""
from __future__ import annotations

import csv
import io
import math
from typing import Any, Iterable, Mapping

from ..methods._registry import get
from .one_run_study import OneRunConfig
from .plan import BASELINE, FULL, BenchConfig, StudyConfig
from .stats import aggregate, best, mean_std, pareto, rank_table

FIELDS = ("study", "dataset", "label_noise", "imbalance", "kind", "method", "method_name", "family", "params",
          "prune_ratio", "compute_budget", "scorer", "score_model", "score_epochs", "record_view", "score_runs",
          "prune_at", "record_every", "dynamic", "train_model", "train_epochs", "seed", "test_accuracy", "cost",
          "delta_vs_full", "delta_vs_baseline", "train_samples", "noisy_removed_share", "ood_aupr", "ood_chance",
          "subset_budget", "epochs", "optimizer_steps", "sample_passes", "full_equivalent", "train_seconds",
          "cpu_seconds", "wall_vs_full", "cpu_vs_full", "score_seconds", "selection_seconds")
"""Columns of results.csv, in order (results.json rows hold the same fields). ``kind``: full,
subset, baseline (all data at cost ``compute_budget``) or one-run; ``cost``: per-training
cost (subset: (1 - r) x its epochs / E, one-run: ``full_equivalent``, baseline: B); the
deltas are paired by seed (see :func:`~dataprune.bench.stats.add_deltas`)."""


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _csv_value(row.get(k, "")) for k in FIELDS})
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def pct(v: float) -> str:
    return f"{100 * v:.2f}"


def fmt_mean_std(m: float, s: float, n: int, expected: int | None = None, bold: bool = False) -> str:
    if n == 0 or math.isnan(m):
        return "–"
    text = pct(m) if n < 2 or math.isnan(s) else f"{pct(m)} ± {pct(s)}"
    if bold:
        text = f"**{text}**"
    if expected is not None and n < expected:
        text += f" (n={n})"
    return text


def ratio_header(r: float) -> str:
    return f"{100 * r:g}%"


def _num(v: Any) -> float:
    return float(v) if v not in ("", None) else math.nan


def main_tables(rows: list[dict[str, Any]], config: BenchConfig, value: str = "test_accuracy",
                what: str = "test top-1 accuracy (%)", min_methods: int = 1) -> str:
    """Per (scorer, train model): the paper's Table 2 layout with mean ± std over seeds, rank
    per ratio (1 = best, ties averaged), average rank and the full-set row; best in bold."""
    out = []
    agg = aggregate([r for r in rows if r.get(value) not in ("", None)],
                    ("scorer", "method", "train_model", "prune_ratio"), value)
    full = aggregate([r for r in rows if r["method"] == FULL and r.get(value) not in ("", None)],
                     ("train_model",), value)
    base = baseline_means(rows, value)
    nseeds = len(config.seeds)
    for scorer in config.scorers:
        labels = [s.label for s in config.selectors if s.scorer == scorer.id]
        if len(labels) < max(1, min_methods):
            continue
        for tm in config.train_models:
            ratios = _measured_ratios(agg, scorer.id, labels, tm, config.prune_ratios)
            means = {lab: {r: agg.get((scorer.id, lab, tm, r), (math.nan,))[0] for r in ratios} for lab in labels}
            per, avg = rank_table(means, ratios)
            best_col = {r: best({lab: means[lab][r] for lab in labels}) for r in ratios}
            best_avg = best(avg, better=lambda a, b: a < b)
            out.append(f"### {scorer.model} → {tm}: {what} (scoring run `{scorer.id}`, "
                       f"K={scorer.epochs}, {scorer.record_view} view{', %d runs' % scorer.runs if scorer.runs > 1 else ''})\n")
            head = ["Method \\ Pruning ratio"] + [x for r in ratios for x in (ratio_header(r), "rank")] + ["avg rank"]
            out.append("| " + " | ".join(head) + " |")
            out.append("| --- | " + " | ".join(["---:"] * (len(head) - 1)) + " |")
            for lab in labels:
                cells = [lab]
                for r in ratios:
                    m, s, n = agg.get((scorer.id, lab, tm, r), (math.nan, math.nan, 0))
                    cells.append(fmt_mean_std(m, s, n, nseeds, bold=lab in best_col[r]))
                    rk = per[lab].get(r)
                    cells.append("–" if rk is None else (f"**{rk:g}**" if rk == 1 else f"{rk:g}"))
                a = avg[lab]
                cells.append("–" if math.isnan(a) else (f"**{a:.2f}**" if lab in best_avg else f"{a:.2f}"))
                out.append("| " + " | ".join(cells) + " |")
            m, s, n = full.get((tm,), (math.nan, math.nan, 0))
            out.append("| No pruning | " + " | ".join([fmt_mean_std(m, s, n, nseeds)] + [""] * (len(head) - 2)) + " |")
            if any((tm, budget_of(r)) in base for r in ratios):
                out.append(f"| {BASELINE_ROW} | " + " | ".join(
                    x for r in ratios for x in (fmt_mean_std(*base.get((tm, budget_of(r)), (math.nan, math.nan, 0)),
                                                             nseeds), "")) + " |  |")
            out.append("")
    return "\n".join(out)


BASELINE_ROW = "All data, cost 1 − r (matched compute)"


def budget_of(ratio: float) -> float:
    """The matched-compute baseline's budget for prune ratio ``ratio`` (1 - r, as stored)."""
    return round(1 - ratio, 6)


def baseline_means(rows: list[dict[str, Any]], value: str = "test_accuracy"
                   ) -> dict[tuple[Any, ...], tuple[float, float, int]]:
    """``{(train model, B): (mean, std, n)}`` of the baseline rows."""
    return aggregate([r for r in rows if r.get("kind") == BASELINE], ("train_model", "compute_budget"), value)


def delta_tables(rows: list[dict[str, Any]], config: BenchConfig) -> str:
    """Per (scorer, train model): each method's Δ vs the matched-compute baseline at the same
    cost and Δ vs the full run, in points, each the mean over seeds of the paired differences."""
    if not any(r.get("kind") == BASELINE for r in rows):
        return ""
    subsets = [r for r in rows if r.get("kind") == "subset"]
    keys = ("scorer", "method", "train_model", "prune_ratio")
    agg_b, agg_f = aggregate(subsets, keys, "delta_vs_baseline"), aggregate(subsets, keys, "delta_vs_full")
    out = []
    for scorer in config.scorers:
        labels = [s.label for s in config.selectors if s.scorer == scorer.id]
        for tm in config.train_models:
            ratios = _measured_ratios(agg_b, scorer.id, labels, tm, config.prune_ratios)
            out.append(f"### {scorer.model} → {tm}: Δ vs the matched-compute baseline (all data at cost 1 − r) "
                       f"| Δ vs full, test top-1 points, mean over seeds of paired differences (scoring run "
                       f"`{scorer.id}`)\n")
            out.append("| Method \\ Pruning ratio | " + " | ".join(
                f"{ratio_header(r)} vs baseline | vs full" for r in ratios) + " |")
            out.append("| --- | " + " | ".join(["---:"] * (2 * len(ratios))) + " |")
            for lab in labels:
                cells = [x for r in ratios for x in (_delta(agg_b.get((scorer.id, lab, tm, r))),
                                                      _delta(agg_f.get((scorer.id, lab, tm, r))))]
                out.append(f"| {lab} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def _delta(v: tuple[float, float, int] | None) -> str:
    if v is None or v[2] == 0:
        return "–"
    return f"{100 * v[0]:+.2f}" + (f" ± {100 * v[1]:.2f}" if v[2] > 1 else "")


def _measured_ratios(agg: Mapping[tuple, Any], scorer: str, labels: list[str], train_model: str,
                     ratios: list[float]) -> list[float]:
    """The ``ratios`` with a result for some method of (scorer, train model); all of them
    when none has one yet (a train model asked for at fewer ratios gets no empty columns)."""
    return [r for r in ratios if any((scorer, lab, train_model, r) in agg for lab in labels)] or list(ratios)


def noise_table(rows: list[dict[str, Any]], config: BenchConfig) -> str:
    """Share of noisy samples among each method's removed samples, per ratio (%)."""
    agg = aggregate([r for r in rows if r["method"] != FULL and r.get("noisy_removed_share") not in ("", None)],
                    ("scorer", "method", "prune_ratio"), "noisy_removed_share")
    if not agg:
        return ""
    ratios = config.prune_ratios
    out = [f"### Share of noisy samples among the removed (%), label noise {100 * config.label_noise:g}% "
           f"(random removal: {100 * config.label_noise:g}% expected)\n",
           "| Scoring run | Method \\ Pruning ratio | " + " | ".join(ratio_header(r) for r in ratios) + " |",
           "| --- | --- | " + " | ".join(["---:"] * len(ratios)) + " |"]
    for sel in config.selectors:
        vals = [agg.get((sel.scorer, sel.label, r)) for r in ratios]
        if any(v is not None for v in vals):
            out.append(f"| {sel.scorer} | {sel.label} | " +
                       " | ".join("–" if v is None else pct(v[0]) for v in vals) + " |")
    return "\n".join(out) + "\n"


def cross_arch_table(rows: list[dict[str, Any]], config: BenchConfig, method: str = "dyn-unc") -> str:
    """Table 4 layout: ``score model → train model`` accuracy of ``method``'s subsets, and
    each train model on the full set."""
    if len(config.train_models) < 2 and all(s.model in config.train_models for s in config.scorers):
        return ""
    agg = aggregate(rows, ("scorer", "method", "train_model", "prune_ratio"), "test_accuracy")
    full = aggregate([r for r in rows if r["method"] == FULL], ("train_model",), "test_accuracy")
    ratios = config.prune_ratios
    out = [f"### Cross-architecture generalisation of {method} subsets: test top-1 accuracy (%)\n",
           "| Pruning → Test model | 0% | " + " | ".join(ratio_header(r) for r in ratios) + " |",
           "| --- | ---: | " + " | ".join(["---:"] * len(ratios)) + " |"]
    for tm in config.train_models:
        for scorer in config.scorers:
            if not any(s.label == method and s.scorer == scorer.id for s in config.selectors):
                continue
            vals = [agg.get((scorer.id, method, tm, r), (math.nan, math.nan, 0)) for r in ratios]
            out.append(f"| {scorer.model} → {tm} |  | " + " | ".join(fmt_mean_std(*v) for v in vals) + " |")
        m = full.get((tm,), (math.nan, math.nan, 0))
        out.append(f"| {tm} no pruning | {fmt_mean_std(*m)} | " + " | ".join("" for _ in ratios) + " |")
    return "\n".join(out) + "\n"


def ood_tables(rows: list[dict[str, Any]], config: BenchConfig) -> str:
    """Table 6 layout: OOD AUPR (%) per prune ratio (rows), one column per method."""
    have = [r for r in rows if r.get("ood_aupr") not in ("", None)]
    if not have:
        return ""
    agg = aggregate(have, ("scorer", "method", "train_model", "prune_ratio"), "ood_aupr")
    full = aggregate([r for r in have if r["method"] == FULL], ("train_model",), "ood_aupr")
    out = []
    for scorer in config.scorers:
        labels = [s.label for s in config.selectors if s.scorer == scorer.id]
        for tm in config.train_models:
            out.append(f"### Out-of-distribution detection, {scorer.model} → {tm}: AUPR (%) of max-softmax "
                       f"detection, OOD = `{config.ood_dataset}` as the positive class\n")
            out.append("| Pruning ratio | " + " | ".join(labels) + " |")
            out.append("| --- | " + " | ".join(["---:"] * len(labels)) + " |")
            m = full.get((tm,), (math.nan, math.nan, 0))
            out.append(f"| 0% (no pruning) | " + " | ".join(fmt_mean_std(*m) for _ in labels) + " |")
            for r in _measured_ratios(agg, scorer.id, labels, tm, config.prune_ratios):
                vals = [agg.get((scorer.id, lab, tm, r), (math.nan, math.nan, 0)) for lab in labels]
                out.append(f"| {ratio_header(r)} | " + " | ".join(fmt_mean_std(*v) for v in vals) + " |")
            out.append("")
    chance = _num(have[0].get("ood_chance"))
    if not math.isnan(chance):
        out.append(f"Chance level (OOD share of the pooled test set): {pct(chance)}%.\n")
    return "\n".join(out)


def cost_table(rows: list[dict[str, Any]], config: BenchConfig) -> str:
    """Scoring compute vs accuracy: one row per method variant (scorer + parameters).

    ``× full training`` = scoring seconds / seconds of training the train model on the full
    set (mean over seeds): what a scoring run costs in units of the training it is meant to
    shorten. A method that reads nothing from the scoring run (random) costs 0 s. The full-set accuracy is repeated in every
    ratio column as the reference."""
    agg = aggregate(rows, ("scorer", "method", "train_model", "prune_ratio"), "test_accuracy")
    full_rows = [r for r in rows if r["method"] == FULL]
    full = aggregate(full_rows, ("train_model",), "test_accuracy")
    full_secs = aggregate([r for r in full_rows if r.get("train_seconds") not in ("", None)],
                          ("train_model",), "train_seconds")
    seconds = {(r["scorer"], r["method"]): (r["score_seconds"], r["selection_seconds"])
               for r in rows if r["method"] != FULL}
    ratios, nseeds = config.prune_ratios, len(config.seeds)
    out = []
    for tm in config.train_models:
        train_s = full_secs.get((tm,), (math.nan,))[0]
        out.append(f"### Scoring cost vs accuracy of the subsets trained with {tm} (test top-1 %; "
                   f"full-set training: {_secs(train_s)} s)\n")
        out.append("| Variant | scoring model | K | view | runs | params | scoring s | × full training | "
                   "selection s | " + " | ".join(ratio_header(r) for r in ratios) + " |")
        out.append("| --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | "
                   + " | ".join(["---:"] * len(ratios)) + " |")
        for sel in config.selectors:
            sc = config.scorer(sel.scorer)
            sec, selsec = seconds.get((sel.scorer, sel.label), ("", ""))
            params = ", ".join(f"{k}={v}" for k, v in sel.params) or "–"
            runs = len(sel.runs) if sel.runs is not None else sc.runs
            run = [sc.model, sc.epochs, sc.record_view, runs]
            method = get(sel.method)
            if not method.needs and not method.files:  # reads nothing from a scoring run (random)
                sec, run = 0.0, ["–"] * 4
            vals = [agg.get((sel.scorer, sel.label, tm, r), (math.nan, math.nan, 0)) for r in ratios]
            out.append(f"| {sel.label} | {' | '.join(map(str, run))} | {params} | "
                       f"{_secs(sec)} | {_secs(_num(sec) / train_s, 2)} | {_secs(selsec, 2)} | "
                       + " | ".join(fmt_mean_std(*v, nseeds) for v in vals) + " |")
        m = full.get((tm,), (math.nan, math.nan, 0))
        out.append("| no pruning (reference) | | | | | | | | | "
                   + " | ".join(fmt_mean_std(*m, nseeds) for _ in ratios) + " |")
        out.append("")
    return "\n".join(out)


def _secs(v: Any, digits: int = 0) -> str:
    x = _num(v)
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def ablation_table(rows: list[dict[str, Any]], config: BenchConfig) -> str:
    """Table 7 layout: one variance (cartography) vs Dyn-Unc from one and from several runs."""
    multi = [s for s in config.scorers if s.runs > 1]
    if not multi:
        return ""
    agg = aggregate(rows, ("scorer", "method", "train_model", "prune_ratio"), "test_accuracy")
    out = []
    for scorer in multi:
        sels = [s for s in config.selectors if s.scorer == scorer.id and s.method in ("dyn-unc", "cartography")]
        for tm in config.train_models:
            out.append(f"### Ablation of the observation number ({scorer.model} → {tm}, test top-1 %)\n")
            out.append("| Method (observations) | " + " | ".join(ratio_header(r) for r in config.prune_ratios) + " |")
            out.append("| --- | " + " | ".join(["---:"] * len(config.prune_ratios)) + " |")
            for sel in sels:
                n = len(sel.runs) if sel.runs is not None else scorer.runs
                how = ("one variance over the run" if sel.method == "cartography"
                       else f"std over windows of J={dict(sel.params).get('window')}")
                what = f"{how}, {f'scores of {n} runs averaged' if n > 1 else '1 run'}"
                vals = [agg.get((scorer.id, sel.label, tm, r), (math.nan, math.nan, 0)) for r in config.prune_ratios]
                out.append(f"| {sel.label} ({what}) | " + " | ".join(fmt_mean_std(*v) for v in vals) + " |")
            out.append("")
    return "\n".join(out)


def table_md(rows: list[dict[str, Any]], config: StudyConfig, skipped: Mapping[str, str] | None = None) -> str:
    """The whole table.md of any study; ``skipped``: methods that could not select."""
    if isinstance(config, OneRunConfig):
        parts = [one_run_table(summary(rows), config, len(rows), sum(1 for _ in config.train_cells()))]
    else:
        parts = [f"# dataprune bench: {config.dataset}"
                 f"{f' (first {config.limit} training samples)' if config.limit else ''}\n",
                 f"Train: {config.train_epochs} epochs ({config.subset_budget} budget for subsets), batch "
                 f"{config.batch_size}, lr {config.lr}; seeds {', '.join(map(str, config.seeds))}; data: "
                 f"{config.regime()}. Mean ± sample std over seeds; rank 1 = best mean; best per column in bold. "
                 "Matched-compute baseline: all data for round((1 − r) × the full run's optimizer steps), "
                 "warm-up + cosine compressed to them.\n"]
        if config.study == "cost":
            parts.append(cost_table(rows, config))
        parts.append(main_tables(rows, config, min_methods=2 if config.study == "cost" else 1))
        cross = cross_arch_table(rows, config) if config.study != "cost" else ""  # cost_table covers the proxy
        for section in (delta_tables(rows, config), noise_table(rows, config), cross, ood_tables(rows, config),
                        ablation_table(rows, config)):
            if section:
                parts.append(section)
    if skipped:
        parts.append("### Skipped methods\n")
        parts += [f"- {k}: {v}" for k, v in skipped.items()]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


# --- the one-run study ------------------------------------------------------------------------
def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (train model, E, variant or baseline budget): cost and accuracy mean ± std
    over the finished seeds, the mean paired deltas and time ratios."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["train_model"], r["train_epochs"], r["method"], r["compute_budget"]), []).append(r)
    out = []
    for (model, epochs, method, budget), rs in groups.items():
        acc, cost, wall, cpu, delta, base = (mean_std(_num(r[k]) for r in rs) for k in (
            "test_accuracy", "cost", "wall_vs_full", "cpu_vs_full", "delta_vs_full", "delta_vs_baseline"))
        first = rs[0]
        out.append({"model": model, "epochs": epochs, "variant": baseline_label(budget) if budget != "" else method,
                    "family": first["family"], "prune_at": first.get("prune_at", ""),
                    "prune_ratio": first["prune_ratio"], "record_every": first.get("record_every", ""),
                    "compute_budget": budget, "acc_mean": acc[0], "acc_std": acc[1], "n": acc[2], "cost": cost[0],
                    "wall": wall[0], "wall_n": wall[2], "cpu": cpu[0], "cpu_n": cpu[2],
                    "delta": delta[0], "delta_n": delta[2], "delta_base": base[0], "delta_base_n": base[2],
                    "params": first["params"] or "{}"})
    return out


def baseline_label(budget: float) -> str:
    return f"all data, cost {budget:g}"


def matched(summ: list[dict[str, Any]], row: dict[str, Any], family: str) -> dict[str, Any] | None:
    """The ``family`` line of the same arm whose cost is nearest ``row``'s."""
    cands = [s for s in summ if s["family"] == family and (s["model"], s["epochs"]) == (row["model"], row["epochs"])]
    return min(cands, key=lambda s: abs(s["cost"] - row["cost"]), default=None)


def _n(k: int, n: int) -> str:
    return f" (n={k})" if 0 < k < n else ""


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def one_run_table(summ: list[dict[str, Any]], config: OneRunConfig, finished: int, planned: int) -> str:
    lines = [f"# One-run pruning on {config.dataset}" + (f" (first {config.limit} samples)" if config.limit else ""),
             "",
             f"{finished} of {planned} training runs finished; data: {config.regime()}. Cost: `full_equivalent` = "
             "samples forwarded and backwarded / (E × N), and wall seconds of the whole run (scoring and "
             "selection included) / those of the full run with the same seed (2-core CPU shared with other jobs: "
             "wall ratios are noisy), and the process's CPU seconds / the full run's (one thread; robust to the "
             "sharing; – where not measured, (n=) where fewer seeds have it). "
             "Test top-1 in %, mean ± std over seeds; Δ = mean over seeds of (run − full run of the same seed), "
             "in points; Δ base = mean over seeds of (run − the matched-compute baseline of the same seed at the "
             "run's cost: all data for that share of the optimizer steps, schedule compressed; linear between "
             "the measured budgets and the full run, – outside them). "
             "Static pruning scores the train view of the first T epochs (F = recordings per epoch⁻¹).", ""]
    for model, epochs in config.arms:
        arm = sorted((s for s in summ if (s["model"], s["epochs"]) == (model, epochs)), key=lambda s: s["cost"])
        if not arm:
            continue
        full = next((s for s in arm if s["family"] == FULL), None)
        front = {id(arm[i]) for i in pareto([(s["cost"], s["acc_mean"]) for s in arm])}
        lines += [f"## {model}, E = {epochs}", "",
                  "| variant | params | cost | wall vs full | CPU vs full | test top-1 | Δ | Δ base | Pareto |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |"]
        for s in arm:
            lines.append(f"| {s['variant']} | {s['params'] if s['params'] != '{}' else ''} | {_f(s['cost'], 3)} | "
                         f"{_f(s['wall'])} | {_f(s['cpu'])}{_n(s['cpu_n'], s['n'])} | "
                         f"{fmt_mean_std(s['acc_mean'], s['acc_std'], s['n'], len(config.seeds))} | "
                         f"{_f(100 * s['delta'])}{_n(s['delta_n'], s['n'])} | "
                         f"{_f(100 * s['delta_base'])}{_n(s['delta_base_n'], s['n'])} | "
                         f"{'●' if id(s) in front else ''} |")
        lines.append("")
        if full:
            lines += target_lines(arm)
    return "\n".join(lines) + "\n"


def target_lines(arm: list[dict[str, Any]]) -> list[str]:
    """The targets, checked: (a) issue 11's: cost <= 0.80 (and time within 0.05 of it), within
    0.2 points of full, above random and InfoBatch at the nearest cost; (b) above the
    matched-compute baseline at the same cost (mean paired Δ base > 0)."""
    out = ["Target (cost ≤ 0.80, time (CPU where measured, else wall) ≤ cost + 0.05, within 0.2 points of full, "
           "beats random and InfoBatch at the nearest cost):", ""]
    hits, above = [], []
    for s in arm:
        if s["family"] in (FULL, "random", "infobatch", BASELINE) or not s["cost"] <= 0.80:
            continue
        if s["delta_base"] > 0:
            above.append(f"- **{s['variant']}**: cost {s['cost']:.3f}, Δ base {100 * s['delta_base']:+.2f} "
                         f"(n={s['delta_base_n']})")
        clock = s["cpu"] if s["cpu_n"] else s["wall"]
        ok_wall = not clock > s["cost"] + 0.05
        rnd, ib = matched(arm, s, "random"), matched(arm, s, "infobatch")
        if s["delta"] >= -0.002 and all(o is None or s["delta"] > o["delta"] for o in (rnd, ib)):
            hits.append(f"- **{s['variant']}**: cost {s['cost']:.3f}, wall {_f(s['wall'])}, CPU {_f(s['cpu'])}"
                        f"{'' if ok_wall else ' (time above cost + 0.05)'}, Δ {100 * s['delta']:+.2f}"
                        f" (n={s['n']}); random at cost {_f(rnd['cost'] if rnd else None, 3)}: "
                        f"Δ {_f(100 * rnd['delta'] if rnd else None)}, InfoBatch at {_f(ib['cost'] if ib else None, 3)}: "
                        f"Δ {_f(100 * ib['delta'] if ib else None)}")
    out += hits or ["- no configuration meets it in the finished runs"]
    out += ["", "Above the matched-compute baseline at the same cost (cost ≤ 0.80, mean paired Δ base > 0):", ""]
    out += above or ["- none in the finished runs (or no baseline budget finished)"]
    return out + [""]


def parse_table_md(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text`` as lists of rows of cells (header row first, the
    separator row dropped). Used by tests and anyone post-processing table.md."""
    tables, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(set(c) <= set("-:") and c for c in cells):
                continue
            cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    return tables
