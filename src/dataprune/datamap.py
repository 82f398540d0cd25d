"""The data map of the paper's Fig. 2: mean vs std of the labelled-class probability."""
from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from .errors import DataPruneError
from .fileio import atomic_write_bytes
from .methods._common import observed_moments
from .store import Dynamics


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


def count_colors(k: int) -> dict[str, Any]:
    """Scatter colour options for an integer count 0..k (epochs predicted correctly): one
    discrete viridis colour per value, so the colour bar reads as integers."""
    import matplotlib
    from matplotlib.colors import BoundaryNorm
    k = max(int(k), 1)
    return dict(cmap=matplotlib.colormaps["viridis"].resampled(k + 1),
                norm=BoundaryNorm(np.arange(-0.5, k + 1.5), k + 1))


def count_colorbar(fig: Any, mappable: Any, k: int, **kw: Any) -> Any:
    """A colour bar for :func:`count_colors` with integer ticks only: 0, step, 2*step, ...
    (at most 7; step 1, 2, 5, 10, 20, ...)."""
    k = max(int(k), 1)
    step = min(b * 10 ** e for e in range(len(str(k)) + 1) for b in (1, 2, 5) if b * 10 ** e * 6 >= k)
    cb = fig.colorbar(mappable, label="epochs predicted correctly", **kw)
    cb.set_ticks(np.arange(0, k + 1, step))
    return cb


def zoom_box(x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, share: float = 0.15
             ) -> tuple[float, float, float, float] | None:
    """(x0, x1, y0, y1) around the 1st-99th percentiles of the points in ``mask`` (padded), or
    None when they are not concentrated: the box spans more than ``share`` of the whole
    data range in x or y, or there are no such points."""
    ok = mask & np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return None
    (x0, x1), (y0, y1) = np.percentile(x[ok], [1, 99]), np.percentile(y[ok], [1, 99])
    (lx, hx), (ly, hy) = (np.nanmin(x), np.nanmax(x)), (np.nanmin(y), np.nanmax(y))
    wx, wy = (hx - lx) or 1.0, (hy - ly) or 1.0
    if x1 - x0 > share * wx or y1 - y0 > share * wy:
        return None
    px, py = 0.15 * (x1 - x0) + 0.003 * wx, 0.15 * (y1 - y0) + 0.003 * wy  # padding, but not
    return (float(max(x0 - px, lx - 0.1 * px)), float(min(x1 + px, hx + 0.1 * px)),  # far past
            float(max(y0 - py, ly - 0.1 * py)), float(min(y1 + py, hy + 0.1 * py)))  # the data


def plot_datamap(ax: Any, dynamics: Dynamics, pruned: np.ndarray | None = None, *,
                 title: str = "", max_points: int = 20000, seed: int = 0,
                 box: tuple[float, float, float, float] | None = None) -> Any:
    """Draw the data map on ``ax``: x = std, y = mean, colour = epochs correct; ``pruned``
    (a boolean (N,) mask) marked with black crosses. Subsamples to ``max_points`` points;
    ``box`` = (x0, x1, y0, y1) zooms in (the points inside it are subsampled)."""
    mean, std, correct = datamap_coordinates(dynamics)
    inside = np.ones(len(mean), dtype=bool) if box is None else (
        (std >= box[0]) & (std <= box[1]) & (mean >= box[2]) & (mean <= box[3]))
    cand = np.flatnonzero(inside)
    show = np.sort(cand[np.random.default_rng(seed).permutation(len(cand))[:max_points]])
    sc = ax.scatter(std[show], mean[show], c=correct[show], s=2 if box is None else 4,
                    rasterized=True, **count_colors(dynamics.epochs))
    if pruned is not None:
        mark = show[pruned[show]]
        ax.scatter(std[mark], mean[mark], s=3 if box is None else 8, marker="x", c="black",
                   linewidths=0.4, alpha=0.5, label=f"pruned ({int(pruned.sum())})", rasterized=True)
        ax.legend(loc="lower right", fontsize=7, markerscale=3)
    if box is not None:
        ax.set_xlim(box[0], box[1])
        ax.set_ylim(box[2], box[3])
        ax.locator_params(nbins=4)
    ax.set_xlabel("std of p(label) over epochs")
    ax.set_ylabel("mean of p(label) over epochs")
    ax.set_title(title, fontsize=9)
    return sc


def save_datamap(path: str | os.PathLike, dynamics: Dynamics, keep: np.ndarray | None = None,
                 title: str = "") -> None:
    """Write :func:`datamap_figure` of ``dynamics`` to ``path`` (PNG)."""
    plt = pyplot()
    fig = datamap_figure(dynamics, keep, title)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=130, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def datamap_figure(dynamics: Dynamics, keep: np.ndarray | None = None, title: str = "") -> Any:
    """The data map of ``dynamics``; with ``keep``, a second panel marks the pruned samples
    (those not in ``keep``). When they sit in a small region (Dyn-Unc's easy samples at std ~0,
    mean ~1), a third panel zooms into it; the zoomed box is outlined in the second panel."""
    plt = pyplot()
    from matplotlib.patches import Rectangle
    pruned, box = None, None
    if keep is not None:
        pruned = np.ones(dynamics.num_samples, dtype=bool)
        pruned[keep] = False
        mean, std, _ = datamap_coordinates(dynamics)
        box = zoom_box(std, mean, pruned)
    panels = 1 if keep is None else 2 if box is None else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.8 * panels + 0.8, 4.3), squeeze=False, layout="constrained")
    sc = plot_datamap(axes[0, 0], dynamics, title="all training samples")
    if keep is not None:
        plot_datamap(axes[0, 1], dynamics, pruned, title=title or "pruned samples marked")
    if box is not None:
        axes[0, 1].add_patch(Rectangle((box[0], box[2]), box[1] - box[0], box[3] - box[2], fill=False,
                                       ec="red", lw=1.2, zorder=5))
        plot_datamap(axes[0, 2], dynamics, pruned, box=box, title="zoom into the red box")
        for side in axes[0, 2].spines.values():
            side.set_edgecolor("red")
    count_colorbar(fig, sc, dynamics.epochs, ax=axes.ravel().tolist(), fraction=0.03, pad=0.01)
    return fig
