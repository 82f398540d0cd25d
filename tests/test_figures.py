"""Figures: one style per method everywhere, a 2-column
accuracy figure with dot plots for single-ratio panels and one legend outside the axes,
integer colour bars, the demo's zoom panel, and images of any layout and size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.bench.figures import (EXTRA_STYLES, METHOD_STYLES, accuracy_figure, datamaps,
                                     display_image, method_styles, removed_hard)
from dataprune.bench.plan import FULL
from dataprune.bench.studies import main_config
from dataprune.datamap import datamap_figure, save_datamap, zoom_box

pytest.importorskip("matplotlib")


def test_every_method_has_its_own_style():
    assert set(dp.list_methods()) <= set(METHOD_STYLES)
    colours = [c for c, _ in METHOD_STYLES.values()]
    assert len(set(colours)) == len(colours)  # 11 methods, 11 colours: dyn-unc and random differ
    assert METHOD_STYLES["dyn-unc"][0] != METHOD_STYLES["random"][0]
    extra = list(EXTRA_STYLES)
    assert len(set(extra)) == len(extra) and not set(extra) & set(METHOD_STYLES.values())


def test_styles_do_not_depend_on_the_other_methods():
    a = method_styles(["random", "dyn-unc"])
    b = method_styles(["tdds", "aum", "ssp", "moderate", "grand", "el2n", "entropy", "forgetting",
                       "cartography", "dyn-unc", "random", "variant A", "variant B"])
    assert a["dyn-unc"] == b["dyn-unc"] and a["random"] == b["random"]
    assert b["variant A"]["color"] != b["variant B"]["color"]
    assert b["dyn-unc"]["lw"] > b["random"]["lw"]


def _rows(config, accuracy):
    rows = []
    for sel in config.selectors:
        for r in config.prune_ratios if sel.scorer == "small-cnn" else config.prune_ratios[:1]:
            for tm in config.train_models:
                for seed in config.seeds:
                    rows.append(dict(scorer=sel.scorer, method=sel.label, train_model=tm, prune_ratio=r,
                                     seed=seed, test_accuracy=accuracy(sel.label, r, seed)))
    for tm in config.train_models:
        rows += [dict(scorer="", method=FULL, train_model=tm, prune_ratio=0.0, seed=s, test_accuracy=0.9)
                 for s in config.seeds]
    return rows


def test_accuracy_figure_layout():
    config = main_config(score_models=["small-cnn", "mlp"], methods_="all", prune_ratios=[0.25, 0.5],
                         train_models=["small-cnn", "mlp"], seeds=[0, 1])
    config.selectors = [s for s in config.selectors if s.scorer == "small-cnn" or s.method in ("random", "dyn-unc")]
    rng = np.random.default_rng(0)
    fig = accuracy_figure(_rows(config, lambda m, r, s: 0.9 - 0.05 * r + 0.002 * rng.standard_normal()), config)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 4
    width, height = fig.get_size_inches()
    assert width < 12 and height > 6  # 2 x 2, not 4 in a row
    assert {round(ax.get_position().x0, 2) for ax in panels}.__len__() == 2
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels.count("dyn-unc") == 1 and "no pruning" in labels and len(labels) == len(dp.list_methods()) + 1
    # the legend lies below every panel: it covers no point
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert all(box.y1 <= ax.get_window_extent().y0 for ax in panels)
    # the same colour for a method in every panel (line panels and dot panels)
    line_panels, dot_panels = panels[:2], panels[2:]
    for ax in line_panels:
        colours = {line.get_label(): line.get_color() for line in ax.get_lines() if line.get_label()[0] != "_"}
        for c in ax.containers:
            colours[c.get_label()] = c.lines[0].get_color()
        assert colours["dyn-unc"] == METHOD_STYLES["dyn-unc"][0] and colours["random"] == METHOD_STYLES["random"][0]
    for ax in dot_panels:  # one ratio only (mlp scorer): a dot plot, one row per method
        assert [t.get_text() for t in ax.get_yticklabels()] == ["random", "dyn-unc"]
        assert ax.get_title().endswith("at 25%")
        assert [c.lines[0].get_color() for c in ax.containers] == [METHOD_STYLES["random"][0],
                                                                    METHOD_STYLES["dyn-unc"][0]]


def _store(path, n=400, k=8, concentrated=True):
    """Easy samples (confident from epoch 0) and variable ones; N=n, K=k, C=3."""
    rec = dp.Recorder(n, path, 3, epochs=k)
    rng = np.random.default_rng(0)
    y = torch.arange(n) % 3
    easy = np.arange(n) < n // 2
    for e in range(k):
        logits = torch.tensor(rng.normal(0, 1, (n, 3)), dtype=torch.float32)
        boost = np.where(easy, 12.0 if concentrated else 1.0, rng.normal(0, 2, n))
        logits[torch.arange(n), y] += torch.tensor(boost, dtype=torch.float32)
        rec.update(torch.arange(n), logits, y)
        rec.end_epoch()
    return dp.Dynamics.open(path)


def _integer_ticks(fig):
    bar = next(ax for ax in fig.axes if ax.get_ylabel() == "epochs predicted correctly")
    ticks = bar.get_yticks()
    return ticks, np.all(ticks == np.round(ticks))


def test_demo_datamap_zooms_into_a_concentrated_pruned_set(tmp_path):
    dyn = _store(tmp_path / "s")
    keep = np.arange(200, 400)  # prunes the easy half, all at std ~0, mean ~1
    fig = datamap_figure(dyn, keep, "pruned")
    titles = [ax.get_title() for ax in fig.axes]
    assert "zoom into the red box" in titles
    zoom = fig.axes[titles.index("zoom into the red box")]
    x0, x1 = zoom.get_xlim()
    y0, y1 = zoom.get_ylim()
    assert x1 - x0 < 0.05 and y0 > 0.9
    ticks, integer = _integer_ticks(fig)
    assert integer and ticks[0] == 0 and ticks[-1] <= 8
    save_datamap(tmp_path / "d.png", dyn, keep)
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_no_zoom_when_the_pruned_set_is_spread(tmp_path):
    dyn = _store(tmp_path / "s", concentrated=False)
    fig = datamap_figure(dyn, np.arange(0, 400, 2), "random")
    assert "zoom into the red box" not in [ax.get_title() for ax in fig.axes]
    assert zoom_box(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([True, True])) is None
    assert zoom_box(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.array([False, False])) is None


def test_count_colorbar_ticks_are_integers_for_any_k(tmp_path):
    from dataprune.datamap import count_colorbar, count_colors, pyplot
    plt = pyplot()
    for k in (1, 2, 7, 15, 30, 90, 1000):
        fig, ax = plt.subplots()
        sc = ax.scatter([0, 1], [0, 1], c=[0, k], **count_colors(k))
        ticks = count_colorbar(fig, sc, k, ax=ax).get_ticks()
        assert np.all(ticks == np.round(ticks)) and ticks[0] == 0 and 2 <= len(ticks) <= 7, (k, ticks)
        plt.close(fig)


@pytest.mark.parametrize("shape,expected", [
    ((5, 7), (5, 7)), ((1, 5, 7), (5, 7)), ((3, 5, 7), (5, 7, 3)), ((5, 7, 3), (5, 7, 3)),
    ((5, 7, 1), (5, 7)), ((3, 32, 32), (32, 32, 3)), ((1, 1), (1, 1)),
])
def test_display_image_layouts(shape, expected):
    assert display_image(np.zeros(shape, np.uint8)).shape == expected


def test_display_image_scales_floats_and_refuses_other_shapes():
    out = display_image(np.array([[[-2.0, 0.0], [1.0, 2.0]]] * 3))  # a normalised (3, 2, 2) tensor
    assert out.shape == (2, 2, 3) and out.min() == 0.0 and out.max() == 1.0
    with pytest.raises(ValueError, match=r"image of shape \(4, 5, 6\)"):
        display_image(np.zeros((4, 5, 6)))
    with pytest.raises(ValueError, match=r"image of shape \(2, 3, 4, 5\)"):
        display_image(np.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize("shape", [(9, 11), (1, 9, 11), (3, 9, 11), (9, 11, 3)])
def test_removed_hard_any_image_layout(shape, tmp_path):
    dyn = _store(tmp_path / "s", n=40, k=4)
    images = np.random.default_rng(0).integers(0, 255, (40, *shape)).astype(np.uint8)
    shown = removed_hard(tmp_path / "r.png", images, dyn.labels, dyn, np.arange(20, 40), per_row=4,
                         predicted=np.zeros(40, int))
    assert len(shown["removed"]) == 4 and len(shown["kept"]) == 4
    assert (tmp_path / "r.png").stat().st_size > 1000
    if shape == (3, 9, 11):  # the crash of issue 12 (RGB image folders); also as a float tensor
        removed_hard(tmp_path / "f.png", torch.tensor(images).float() / 255, dyn.labels, dyn,
                     np.arange(20, 40), per_row=3)


def test_bench_datamaps_integer_colour_bar(tmp_path):
    dyn = _store(tmp_path / "s", n=60, k=5)
    datamaps(tmp_path / "m.png", dyn, {"dyn-unc": np.arange(30, 60), "random": np.arange(0, 60, 2)}, 0.5)
    assert (tmp_path / "m.png").stat().st_size > 1000


def test_accuracy_figures_draw_the_matched_compute_baseline(tmp_path):
    from dataprune.bench.figures import BASELINE_NAME, accuracy_vs_cost
    from dataprune.bench.one_run_study import OneRunConfig
    config = main_config(score_models=["small-cnn"], methods_=["random", "dyn-unc"], prune_ratios=[0.25, 0.5],
                         train_models=["small-cnn"], seeds=[0])
    rows = _rows(config, lambda m, r, s: 0.9 - 0.05 * r)
    rows += [dict(scorer="", method="baseline", kind="baseline", train_model="small-cnn", prune_ratio=0.0,
                  compute_budget=b, seed=0, test_accuracy=a) for b, a in ((0.75, 0.885), (0.5, 0.87))]
    fig = accuracy_figure(rows, config)
    (panel,) = [ax for ax in fig.axes if ax.has_data()]
    line = next(ln for ln in panel.get_lines() if ln.get_label() == BASELINE_NAME)
    assert line.get_xdata().tolist() == [25.0, 50.0] and line.get_ydata().tolist() == pytest.approx([88.5, 87.0])
    assert BASELINE_NAME in [t.get_text() for t in fig.legends[0].get_texts()]
    # the one-run figure: the budget curve through the baselines and the full run (cost 1)
    summ = [dict(model="mlp", epochs=3, family=f, cost=c, acc_mean=a, acc_std=0.0)
            for f, c, a in (("full", 1.0, 0.9), ("baseline", 0.5, 0.85), ("baseline", 0.7, 0.88),
                            ("el2n", 0.76, 0.89))]
    accuracy_vs_cost(tmp_path / "c.png", summ, OneRunConfig(arms=[("mlp", 3)]))
    assert (tmp_path / "c.png").stat().st_size > 1000 and not list(tmp_path.glob(".*.tmp"))


def test_old_datamap_module_warns_and_re_exports(monkeypatch):
    """`dataprune.report.datamap` (the data map's module before `dataprune.datamap`) still works."""
    import importlib
    import sys

    import dataprune.datamap as datamap
    monkeypatch.delitem(sys.modules, "dataprune.report.datamap", raising=False)
    with pytest.warns(DeprecationWarning, match="import dataprune.datamap instead"):
        old = importlib.import_module("dataprune.report.datamap")
    assert all(getattr(old, name) is getattr(datamap, name) for name in old.__all__)
    assert "save_datamap" in old.__all__
