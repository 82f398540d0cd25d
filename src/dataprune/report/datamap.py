"""The data map of the paper's Fig. 2: mean vs std of the labelled-class probability."""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from ..errors import DataPruneError
from ..fileio import atomic_write_bytes
from ..methods._common import observed_moments
from ..store import Dynamics


def pyplot() -> Any:
    """matplotlib.pyplot with a non-interactive backend, or a clear error naming the extra."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DataPruneError("figures need matplotlib: pip install 'dataprune[plot]'") from None
    return plt


def datamap_coordinates(dynamics: Dynamics, chunk_size: int = 1 << 20
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: mean and std (ddof=0) of ``prob`` over observed epochs, and the number
    of epochs predicted correctly. Returns three (N,) arrays."""
    n = dynamics.num_samples
    mean, std, correct = np.full(n, np.nan), np.full(n, np.nan), np.empty(n, dtype=np.int64)
    for a in range(0, n, chunk_size):
        cnt, m, var = observed_moments(np.asarray(dynamics.prob[:, a:a + chunk_size], dtype=np.float64))
        seen = cnt > 0
        mean[a:a + chunk_size][seen] = m[seen]
        std[a:a + chunk_size][seen] = np.sqrt(var[seen])
        correct[a:a + chunk_size] = (np.asarray(dynamics.correct[:, a:a + chunk_size]) == 1).sum(0)
    return mean, std, correct


def plot_datamap(ax: Any, dynamics: Dynamics, pruned: np.ndarray | None = None, *,
                 title: str = "", max_points: int = 20000, seed: int = 0) -> Any:
    """Draw the data map on ``ax``: x = std, y = mean, colour = epochs correct; ``pruned``
    (a boolean (N,) mask) marked with black crosses. Subsamples to ``max_points`` points."""
    mean, std, correct = datamap_coordinates(dynamics)
    n = len(mean)
    show = np.sort(np.random.default_rng(seed).permutation(n)[:max_points])
    sc = ax.scatter(std[show], mean[show], c=correct[show], s=2, cmap="viridis",
                    vmin=0, vmax=dynamics.epochs, rasterized=True)
    if pruned is not None:
        mark = show[pruned[show]]
        ax.scatter(std[mark], mean[mark], s=3, marker="x", c="black", linewidths=0.4,
                   alpha=0.5, label=f"pruned ({int(pruned.sum())})", rasterized=True)
        ax.legend(loc="lower right", fontsize=7, markerscale=3)
    ax.set_xlabel("std of p(label) over epochs")
    ax.set_ylabel("mean of p(label) over epochs")
    ax.set_title(title, fontsize=9)
    return sc


def save_datamap(path: str | os.PathLike, dynamics: Dynamics, keep: np.ndarray | None = None,
                 title: str = "") -> None:
    """Write the data map of ``dynamics`` to ``path`` (PNG); samples not in ``keep`` are pruned."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if keep is not None else 1, figsize=(11 if keep is not None else 5.5, 4.5),
                             squeeze=False)
    sc = plot_datamap(axes[0, 0], dynamics, title="all training samples")
    if keep is not None:
        pruned = np.ones(dynamics.num_samples, dtype=bool)
        pruned[keep] = False
        plot_datamap(axes[0, 1], dynamics, pruned, title=title or "pruned samples marked")
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="epochs predicted correctly")
    buf = io.BytesIO()
    fig.savefig(buf, dpi=130, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
