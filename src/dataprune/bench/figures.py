"""The paper's figures at CPU scale: accuracy vs prune ratio (Fig. 1), data maps of what
each method prunes (Fig. 2), the hardest images Dyn-Unc removes vs keeps (Fig. 3), and the
one-run study's accuracy vs cost; the matched-compute baseline drawn as a curve in both
accuracy figures. Every PNG is written complete or not at all (:func:`save_figure`)."""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

from ..keepfile import read_keep
from ..errors import DataPruneError
from ..fileio import atomic_output
from ..datamap import count_colorbar, count_colors, datamap_coordinates, pyplot
from ..store import Dynamics
from .one_run_study import OneRunConfig
from .plan import BASELINE, FULL, BenchConfig, Selector
from .stats import aggregate, pareto

#: how the matched-compute baseline is drawn in every accuracy figure
BASELINE_STYLE = dict(color="black", ls=":", lw=1.4, marker="|", ms=8)
BASELINE_NAME = "all data, same cost (matched compute)"


class FigureWriteError(DataPruneError):
    """A figure was drawn but could not be written (full disk, unwritable folder): unlike a
    figure that cannot be drawn from the finished cells, this stops the report."""


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 130) -> None:
    """Write ``fig`` as a PNG to ``path`` through a temp file renamed into place (a kill or a
    full disk leaves the old file or none, never a truncated one), then close it. Raises
    :class:`FigureWriteError` naming ``path`` when it cannot be written."""
    plt = pyplot()
    try:
        with atomic_output(path) as f:
            fig.savefig(f, format="png", dpi=dpi)
    except DataPruneError as e:  # atomic_output's full-disk error: it names the path
        raise FigureWriteError(str(e)) from None
    except OSError as e:
        raise FigureWriteError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)

CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}


#: One colour and marker per method, the same in every figure (distinct for all 11 methods).
METHOD_STYLES: dict[str, tuple[str, str]] = {
    "dyn-unc": ("#d62728", "o"), "random": ("#7f7f7f", "x"), "forgetting": ("#1f77b4", "s"),
    "entropy": ("#ff7f0e", "^"), "el2n": ("#2ca02c", "v"), "grand": ("#9467bd", "D"),
    "cartography": ("#8c564b", "P"), "aum": ("#e377c2", "X"), "moderate": ("#bcbd22", "<"),
    "ssp": ("#17becf", ">"), "tdds": ("#393b79", "*"), "dual": ("#000000", "h"),
    "infobatch": ("#ff9896", "d"),  # a dynamic baseline of the one-run study, not a scoring method
}
#: styles for labels not in METHOD_STYLES (variants, new methods), handed out in order
EXTRA_STYLES: tuple[tuple[str, str], ...] = tuple(
    (c, m) for m, c in zip("osD^vP<>*Xh", ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e",
                                            "#e6ab02", "#a6761d", "#000080", "#800000", "#008080", "#666666")))


def method_styles(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Matplotlib style (color, marker, line width) per selector label: a method's own entry
    of :data:`METHOD_STYLES`, or the next of :data:`EXTRA_STYLES` for other labels (cycled)."""
    out: dict[str, dict[str, Any]] = {}
    extra = 0
    for label in dict.fromkeys(labels):
        if label in METHOD_STYLES:
            color, marker = METHOD_STYLES[label]
        else:
            color, marker = EXTRA_STYLES[extra % len(EXTRA_STYLES)]
            extra += 1
        out[label] = dict(color=color, marker=marker, lw=2.2 if label == "dyn-unc" else 1.2)
    return out


def accuracy_vs_ratio(path: str | os.PathLike, rows: list[dict[str, Any]], config: BenchConfig) -> None:
    """Write :func:`accuracy_figure` to ``path`` (PNG)."""
    save_figure(accuracy_figure(rows, config), path)


def accuracy_figure(rows: list[dict[str, Any]], config: BenchConfig) -> Any:
    """One panel per (scorer, train model), two per row: mean test accuracy (± std over seeds)
    against the prune ratio, one line per method, the full set as a dashed line; a panel with
    a single ratio is a dot plot (one row per method). One legend for all panels, below them."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    if config.study == "cost":  # one panel per train model with every scoring variant
        panels = [(None, tm) for tm in config.train_models]
    else:
        panels = [(sc, tm) for sc in config.scorers for tm in config.train_models
                  if any(s.scorer == sc.id for s in config.selectors)]
    agg = aggregate(rows, ("scorer", "method", "train_model", "prune_ratio"), "test_accuracy")
    full = aggregate([r for r in rows if r["method"] == FULL], ("train_model",), "test_accuracy")
    base = aggregate([r for r in rows if r["method"] == BASELINE], ("train_model", "compute_budget"), "test_accuracy")
    styles = method_styles([s.label for s in config.selectors])
    cols = min(2, max(1, len(panels)))
    nrows = math.ceil(max(1, len(panels)) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.4 * cols, 3.9 * nrows), squeeze=False)
    shown: dict[str, Any] = {}
    for ax, (sc, tm) in zip(axes.ravel(), panels):
        series = {}
        for sel in (s for s in config.selectors if sc is None or s.scorer == sc.id):
            key = (sel.scorer, sel.label, tm)
            pts = [(r, *agg[(*key, r)][:2]) for r in sorted(config.prune_ratios) if (*key, r) in agg]
            if pts:
                series[sel.label] = np.array(pts, dtype=float)
        full_acc = 100 * full[(tm,)][0] if (tm,) in full else None
        ratios = sorted({r for pts in series.values() for r in pts[:, 0]})
        baseline = np.array([(r, 100 * base[(tm, round(1 - r, 6))][0]) for r in ratios
                             if (tm, round(1 - r, 6)) in base], dtype=float).reshape(-1, 2)
        if len(ratios) == 1:
            _dot_panel(ax, series, styles, full_acc, baseline)
            what = f" at {100 * ratios[0]:g}%"
        else:
            _line_panel(ax, series, styles, full_acc, baseline)
            what = ""
        ax.set_title(f"{config.dataset}: " + (f"score {sc.model} → " if sc else "scoring variants → ")
                     + f"train {tm}{what}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        shown.update({label: styles[label] for label in series})
        if full_acc is not None:
            shown["no pruning"] = None
        if len(baseline):
            shown[BASELINE_NAME] = BASELINE_STYLE
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], color="black", ls="--", lw=1) if st is None else
               Line2D([], [], **BASELINE_STYLE) if st is BASELINE_STYLE else
               Line2D([], [], color=st["color"], marker=st["marker"], lw=st["lw"], ms=5)
               for st in shown.values()]
    entry_in = 0.06 * max(map(len, shown), default=1) + 0.55  # an entry's width at fontsize 8
    ncol = max(1, min(6, len(handles), int(fig.get_figwidth() // entry_in)))
    legend_in = 0.22 * math.ceil(len(handles) / ncol) + 0.1
    fig.legend(handles, list(shown), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    return fig


def _line_panel(ax: Any, series: dict[str, np.ndarray], styles: dict[str, dict[str, Any]],
                full_acc: float | None, baseline: np.ndarray) -> None:
    """Accuracy (%) against prune ratio (%): one line with error bars per label; the
    matched-compute baseline (``baseline``: (M, 2) ratio, accuracy %) as a dotted curve."""
    for label, pts in series.items():
        st = styles[label]
        ax.errorbar(100 * pts[:, 0], 100 * pts[:, 1], yerr=100 * np.nan_to_num(pts[:, 2]), ms=4, capsize=2,
                    zorder=3 if label == "dyn-unc" else 2, label=label, **st)
    if full_acc is not None:
        ax.axhline(full_acc, color="black", ls="--", lw=1)
    if len(baseline):
        ax.plot(100 * baseline[:, 0], baseline[:, 1], label=BASELINE_NAME, zorder=4, **BASELINE_STYLE)
    ax.set_xlabel("prune ratio (% of training samples removed)", fontsize=8)
    ax.set_ylabel("test top-1 accuracy (%)", fontsize=8)


def _dot_panel(ax: Any, series: dict[str, np.ndarray], styles: dict[str, dict[str, Any]],
               full_acc: float | None, baseline: np.ndarray) -> None:
    """One ratio only: a dot plot, one row per label (accuracy ± std), the full set as a
    vertical dashed line."""
    labels = list(series)
    for y, label in enumerate(labels):
        (_, m, s), st = series[label][0], styles[label]
        ax.errorbar([100 * m], [y], xerr=[100 * np.nan_to_num(s)], color=st["color"], marker=st["marker"],
                    ms=6, capsize=3, lw=1.2, ls="none", label=label)
    if full_acc is not None:
        ax.axvline(full_acc, color="black", ls="--", lw=1)
    if len(baseline):
        ax.axvline(baseline[0, 1], color="black", ls=":", lw=1.4)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("test top-1 accuracy (%)", fontsize=8)


def closest_ratio(ratios: Sequence[float], target: float = 0.25) -> float:
    return min(ratios, key=lambda r: (abs(r - target), r))


def datamaps(path: str | os.PathLike, dynamics: Dynamics, keeps: dict[str, np.ndarray], ratio: float,
             *, max_points: int = 20000, seed: int = 0) -> None:
    """Panel (a): the whole training set's data map (x = std, y = mean of p(label) over
    epochs, colour = epochs predicted correctly); then one panel per method showing only the
    samples it prunes at ``ratio`` over the whole set in grey (the paper's Fig. 2 (b)-(h))."""
    plt = pyplot()
    mean, std, correct = datamap_coordinates(dynamics)
    n_all = len(mean)
    show = np.zeros(n_all, dtype=bool)
    show[np.random.default_rng(seed).permutation(n_all)[:max_points]] = True
    n = 1 + len(keeps)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    flat = axes.ravel()
    kw = dict(s=2, rasterized=True, **count_colors(dynamics.epochs))
    sc = flat[0].scatter(std[show], mean[show], c=correct[show], **kw)
    flat[0].set_title("(a) all training samples", fontsize=9)
    for i, (label, keep) in enumerate(keeps.items(), 1):
        pruned = np.ones(n_all, dtype=bool)
        pruned[keep] = False
        ax = flat[i]
        ax.scatter(std[show], mean[show], s=1, c="0.85", rasterized=True)
        m = show & pruned
        ax.scatter(std[m], mean[m], c=correct[m], **kw)
        ax.set_title(f"({chr(ord('a') + i)}) {label}: {int(pruned.sum())} pruned at {100 * ratio:g}%", fontsize=9)
    for i, ax in enumerate(flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.set_xlabel("std of p(label) over epochs", fontsize=8)
        ax.set_ylabel("mean of p(label) over epochs", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    cax = fig.add_axes((0.945, 0.15, 0.012, 0.7))
    count_colorbar(fig, sc, dynamics.epochs, cax=cax)
    save_figure(fig, path, dpi=110)


def removed_hard(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, dynamics: Dynamics,
                 keep: np.ndarray, *, predicted: np.ndarray | None = None, clean_labels: np.ndarray | None = None,
                 class_names: Sequence[str] | None = None, per_row: int = 8, title: str = "") -> dict[str, list[int]]:
    """The ``per_row`` lowest-mean-probability (hardest) training images Dyn-Unc removes
    (top row) and keeps (bottom row), each titled with its label (and the final model's
    prediction; with label noise, the true label of flipped samples). Returns the sample
    indices shown."""
    plt = pyplot()
    mean, _, _ = datamap_coordinates(dynamics)
    kept = np.zeros(len(mean), dtype=bool)
    kept[keep] = True
    order = np.argsort(np.where(np.isnan(mean), np.inf, mean), kind="stable")
    shown = {"removed": [int(i) for i in order if not kept[i]][:per_row],
             "kept": [int(i) for i in order if kept[i]][:per_row]}
    name = (lambda c: class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c))
    fig, axes = plt.subplots(2, per_row, figsize=(1.6 * per_row, 4.4), squeeze=False)
    for r, (what, idx) in enumerate(shown.items()):
        for c in range(per_row):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(idx):
                continue
            i = idx[c]
            ax.imshow(display_image(images[i]), cmap="gray", interpolation="nearest")
            text = f"#{i} p̄={mean[i]:.2f}\nlabel: {name(int(labels[i]))}"
            if predicted is not None:
                text += f"\npred: {name(int(predicted[i]))}"
            if clean_labels is not None and clean_labels[i] != labels[i]:
                text += f"\nNOISY (true {name(int(clean_labels[i]))})"
            ax.set_title(text, fontsize=6)
        axes[r, 0].text(-0.15, 0.5, f"{what} by Dyn-Unc", transform=axes[r, 0].transAxes, rotation=90,
                        va="center", ha="right", fontsize=8)
    fig.suptitle(title or "hardest training samples (lowest mean p(label)) removed vs kept by Dyn-Unc",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return shown


def display_image(image: Any) -> np.ndarray:
    """One image as ``imshow`` takes it: (H, W) grey or (H, W, 3) colour, from (H, W),
    (1, H, W), (3, H, W), (H, W, 1) or (H, W, 3), any size; integers as they are, floats
    scaled to [0, 1] per image (normalised tensors included)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)  # channels first -> last; (C, H, C) counts as channels last
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)) or min(a.shape[:2]) < 1:
        raise DataPruneError(f"an image of shape {np.asarray(image).shape}; expected (H, W), (1|3, H, W) "
                             "or (H, W, 1|3)")
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    elif a.ndim == 3 and a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def keeps_for(bench: Any, selectors: list[Selector], ratio: float) -> dict[str, np.ndarray]:
    """Keep indices of ``selectors`` at ``ratio`` that exist in the bench folder."""
    out = {}
    for sel in selectors:
        path = bench.keep_path(sel, ratio)
        if path.exists():
            out[sel.label] = read_keep(path)
    return out


MARKERS = {"full": "*", "random": "s", "infobatch": "D", "dual": "o", "dyn-unc": "^", "el2n": "v",
           "forgetting": "P"}


def accuracy_vs_cost(path: str | os.PathLike, summ: list[dict[str, Any]], config: OneRunConfig) -> None:
    """One panel per arm: mean test top-1 vs cost (full_equivalent), one marker per method,
    the Pareto front as a step line, the matched-compute baseline's budget curve (and the
    full run at cost 1) as a dotted line."""
    plt = pyplot()
    arms = [a for a in config.arms if any((s["model"], s["epochs"]) == a for s in summ)]
    fig, axes = plt.subplots(1, len(arms), figsize=(6 * len(arms), 4.5), squeeze=False)
    for ax, (model, epochs) in zip(axes[0], arms):
        arm = [s for s in summ if (s["model"], s["epochs"]) == (model, epochs)]
        full = next((s for s in arm if s["family"] == FULL), None)
        for fam in dict.fromkeys(s["family"] for s in arm if s["family"] != BASELINE):
            pts = [s for s in arm if s["family"] == fam]
            ax.errorbar([s["cost"] for s in pts], [100 * s["acc_mean"] for s in pts],
                        yerr=[100 * (0 if math.isnan(s["acc_std"]) else s["acc_std"]) for s in pts],
                        fmt=MARKERS.get(fam, "x"), ms=7 if fam == FULL else 5, capsize=2, label=fam, alpha=0.85)
        curve = sorted([s for s in arm if s["family"] == BASELINE] + ([full] if full else []), key=lambda s: s["cost"])
        if len(curve) > 1:
            ax.plot([s["cost"] for s in curve], [100 * s["acc_mean"] for s in curve], label=BASELINE_NAME,
                    **BASELINE_STYLE)
        front = [arm[i] for i in pareto([(s["cost"], s["acc_mean"]) for s in arm])]
        ax.step([s["cost"] for s in front], [100 * s["acc_mean"] for s in front], where="post", color="grey",
                lw=1, ls="--", label="Pareto front")
        if full:
            ax.axhline(100 * full["acc_mean"] - 0.2, color="grey", lw=0.8, ls=":", label="full − 0.2 points")
        ax.set_xlabel("cost (sample passes / full training's)")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"{config.dataset} ({config.regime()}): one-run pruning, {model}, E={epochs}", fontsize=9)
        lo = np.nanmin([100 * s["acc_mean"] for s in arm])
        ax.set_ylim(max(lo - 0.5, (100 * full["acc_mean"] - 3) if full else lo - 0.5), None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
