"""The paper's figures at CPU scale: accuracy vs prune ratio (Fig. 1), data maps of what
each method prunes (Fig. 2), and the hardest images Dyn-Unc removes vs keeps (Fig. 3)."""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

from ..keepfile import read_keep
from ..report.datamap import datamap_coordinates, pyplot
from ..store import Dynamics
from .plan import FULL, BenchConfig, Selector
from .stats import aggregate

CLASS_NAMES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
}


def accuracy_vs_ratio(path: str | os.PathLike, rows: list[dict[str, Any]], config: BenchConfig) -> None:
    """One panel per (scorer, train model): mean test accuracy (± std over seeds) against the
    prune ratio, one line per method, the full set as a dashed line."""
    plt = pyplot()
    if config.study == "cost":  # one panel per train model with every scoring variant
        panels = [(None, tm) for tm in config.train_models]
    else:
        panels = [(sc, tm) for sc in config.scorers for tm in config.train_models
                  if any(s.scorer == sc.id for s in config.selectors)]
    agg = aggregate(rows, ("scorer", "method", "train_model", "prune_ratio"), "test_accuracy")
    full = aggregate([r for r in rows if r["method"] == FULL], ("train_model",), "test_accuracy")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    ratios = sorted(config.prune_ratios)
    for ax, (sc, tm) in zip(axes[0], panels):
        for sel in (s for s in config.selectors if sc is None or s.scorer == sc.id):
            key = (sel.scorer, sel.label, tm)
            pts = [(r, *agg[(*key, r)][:2]) for r in ratios if (*key, r) in agg]
            if not pts:
                continue
            x, m, s = (np.array(v, dtype=float) for v in zip(*pts))
            style = dict(lw=2.2, zorder=3) if sel.method == "dyn-unc" else dict(lw=1.2)
            ax.errorbar(100 * x, 100 * m, yerr=100 * np.nan_to_num(s), marker="o", ms=3, capsize=2,
                        label=sel.label, **style)
        if (tm,) in full:
            ax.axhline(100 * full[(tm,)][0], color="black", ls="--", lw=1, label="no pruning")
        ax.set_xlabel("prune ratio (% of training samples removed)")
        ax.set_ylabel("test top-1 accuracy (%)")
        ax.set_title(f"{config.dataset}: " + (f"score {sc.model} → " if sc else "scoring variants → ")
                     + f"train {tm}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


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
    kw = dict(s=2, cmap="viridis", vmin=0, vmax=dynamics.epochs, rasterized=True)
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
    fig.colorbar(sc, cax=cax, label="epochs predicted correctly")
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
            img = np.asarray(images[i])  # (C, H, W) or (H, W)
            ax.imshow(img.transpose(1, 2, 0) if img.ndim == 3 and img.shape[0] == 3 else img.squeeze(), cmap="gray")
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
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return shown


def keeps_for(bench: Any, selectors: list[Selector], ratio: float) -> dict[str, np.ndarray]:
    """Keep indices of ``selectors`` at ``ratio`` that exist in the bench folder."""
    out = {}
    for sel in selectors:
        path = bench.keep_path(sel, ratio)
        if path.exists():
            out[sel.label] = read_keep(path)
    return out
