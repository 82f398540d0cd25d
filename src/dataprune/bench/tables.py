"""results.csv / results.json and table.md in the paper's layouts (Tables 2, 4, 6, 7)."""
from __future__ import annotations

import csv
import io
import math
from typing import Any, Iterable, Mapping

from ..methods._registry import get
from .plan import FULL, BenchConfig
from .stats import aggregate, best, rank_table

FIELDS = ("dataset", "method", "method_name", "params", "prune_ratio", "scorer", "score_model",
          "score_epochs", "record_view", "score_runs", "train_model", "seed", "label_noise",
          "test_accuracy", "train_samples", "noisy_removed_share", "ood_aupr", "budget", "epochs",
          "optimizer_steps", "train_seconds", "score_seconds", "selection_seconds", "ood_chance")
"""Columns of results.csv, in order (results.json rows hold the same fields)."""


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
            out.append("")
    return "\n".join(out)


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


def table_md(rows: list[dict[str, Any]], config: BenchConfig, skipped: Mapping[str, str] | None = None) -> str:
    """The whole table.md: main tables, then noise, cross-architecture, OOD, ablation, cost."""
    parts = [f"# dataprune bench: {config.dataset}"
             f"{f' (first {config.limit} training samples)' if config.limit else ''}\n",
             f"Train: {config.train_epochs} epochs ({config.budget} budget), batch {config.batch_size}, "
             f"lr {config.lr}; seeds {', '.join(map(str, config.seeds))}; label noise "
             f"{100 * config.label_noise:g}%. Mean ± sample std over seeds; rank 1 = best mean; "
             f"best per column in bold.\n"]
    if config.study == "cost":
        parts.append(cost_table(rows, config))
    parts.append(main_tables(rows, config, min_methods=2 if config.study == "cost" else 1))
    cross = cross_arch_table(rows, config) if config.study != "cost" else ""  # cost_table covers the proxy
    for section in (noise_table(rows, config), cross, ood_tables(rows, config), ablation_table(rows, config)):
        if section:
            parts.append(section)
    if skipped:
        parts.append("### Skipped methods\n")
        parts += [f"- {k}: {v}" for k, v in skipped.items()]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


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
