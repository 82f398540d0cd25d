"""Streaming image folders: listing, stratified --limit, workers, eval splits, model sizes, bench."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dataprune as dp
from dataprune.cli import main
from dataprune.train import imagefolder
from dataprune.train.imagefolder import load_imagefolder, stratified_sample
from dataprune.train.runs import DataSpec

pytest.importorskip("torchvision")


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def png_folder(root: Path, per_class=(6, 2), classes=("zebra", "ant", "bee"), eval_split="val",
               size=(20, 16)) -> Path:
    """Classes created out of order; even images grayscale (1 channel), odd ones RGB."""
    from PIL import Image
    rng = np.random.default_rng(0)
    splits = (("train", per_class[0]),) + (((eval_split, per_class[1]),) if eval_split else ())
    for split, k in splits:
        for ci, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for i in range(k):
                a = rng.integers(0, 80, (size[1], size[0], 3), dtype=np.uint8)
                a[:, 5 * ci:5 * ci + 5] += 170  # a class-specific bright stripe
                img = Image.fromarray(a) if i % 2 else Image.fromarray(a[..., 0], mode="L")
                img.save(root / split / c / f"img{i}.png")
    return root


def test_listing_is_sorted_streams_gray_and_rgb(tmp_path, monkeypatch):
    root = png_folder(tmp_path / "f")
    opened = []
    real = imagefolder.open_rgb
    monkeypatch.setattr(imagefolder, "open_rgb", lambda p: opened.append(p) or real(p))
    data = load_imagefolder(root, image_size=8)
    assert opened == []  # listing decodes nothing: memory does not grow with N
    assert data.classes == ["ant", "bee", "zebra"] and data.train_y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert data.train_paths[:2] == ["ant/img0.png", "ant/img1.png"] and data.eval_split == "val"
    x, y, idx = next(iter(data.loader(batch_size=18, shuffle=False, augment=False)))
    assert x.shape == (18, 3, 8, 8) and x.dtype == torch.float32 and len(opened) == 18
    assert torch.equal(y, data.train_y) and idx.tolist() == list(range(18))
    gray = x[0]  # a grayscale PNG becomes three equal channels before normalisation
    mean, std = torch.tensor(imagefolder.IMAGENET_MEAN)[:, None, None], torch.tensor(imagefolder.IMAGENET_STD)[:, None, None]
    raw = gray * std + mean
    assert torch.allclose(raw[0], raw[1], atol=1e-6) and torch.allclose(raw[1], raw[2], atol=1e-6)
    assert data.train_images[3].shape == (3, 8, 8) and data.train_images[3].dtype == np.uint8


def _stratified_reference(labels, n):
    """Slow obvious version of the per-class counts: floor of the quota, at least one per class
    (n >= classes), then +1 by largest remainder / -1 by smallest remainder, one at a time."""
    classes = sorted(set(labels.tolist()))
    count = {c: int((labels == c).sum()) for c in classes}
    quota = {c: n * count[c] / len(labels) for c in classes}
    take = {c: int(np.floor(quota[c])) for c in classes}
    rest = {c: quota[c] - take[c] for c in classes}
    if n >= len(classes):
        take = {c: max(1, t) for c, t in take.items()}
    while sum(take.values()) > n:
        for c in sorted((c for c in classes if take[c] > 1), key=lambda c: rest[c]):
            if sum(take.values()) == n:
                break
            take[c] -= 1
    for c in sorted((c for c in classes if take[c] < count[c]), key=lambda c: -rest[c]):
        if sum(take.values()) == n:
            break
        take[c] += 1
    return take


@pytest.mark.parametrize("case", range(30))
def test_stratified_sample_matches_reference(case):
    rng = np.random.default_rng(case)
    c = int(rng.integers(1, 12))
    labels = np.sort(rng.integers(0, c, int(rng.integers(c, 200))))  # class-sorted, like a folder
    n = int(rng.integers(1, len(labels) + 1))
    got = stratified_sample(labels, n, seed=case)
    assert len(got) == n and np.all(np.diff(got) > 0)
    counts = {k: int((labels[got] == k).sum()) for k in np.unique(labels).tolist()}
    assert {k: v for k, v in counts.items() if v} == {k: v for k, v in _stratified_reference(labels, n).items() if v}
    assert np.array_equal(got, stratified_sample(labels, n, seed=case))  # seeded


def test_stratified_sample_hand_case_and_seed():
    labels = np.array([0] * 6 + [1] * 3 + [2])
    got = stratified_sample(labels, 3, seed=0)  # quotas 1.8, 0.9, 0.3 -> 1, 1, 1
    assert np.bincount(labels[got]).tolist() == [1, 1, 1]
    a, b = stratified_sample(np.repeat(np.arange(4), 50), 40, seed=0), stratified_sample(np.repeat(np.arange(4), 50), 40, seed=1)
    assert not np.array_equal(a, b) and np.bincount(np.repeat(np.arange(4), 50)[a]).tolist() == [10] * 4
    with pytest.raises(ValueError, match="limit 0 is out of range"):
        stratified_sample(labels, 0)


def test_limit_on_class_sorted_folder_keeps_every_class(tmp_path):
    root = png_folder(tmp_path / "f")
    data = load_imagefolder(root, image_size=8, limit=6)  # the first 6 files are all class 'ant'
    assert np.bincount(data.train_y.numpy()).tolist() == [2, 2, 2]
    assert data.train_paths != [f"ant/img{i}.png" for i in range(6)]
    assert len(data.file_list[0]) == 6


def test_same_store_with_0_and_2_workers(tmp_path, capsys):
    root = png_folder(tmp_path / "f")
    runs = []
    for w in (0, 2):
        run = tmp_path / f"w{w}"
        assert run_cli("record", "--dataset", "imagefolder", "--data-dir", root, "--image-size", 8, "--model",
                       "small-cnn", "--epochs", 3, "--batch-size", 5, "--workers", w, "--threads", 1,
                       "--out", run, "--quiet") == 0
        runs.append(run)
    for name in ("prob", "correct", "margin", "el2n", "grand"):
        a, b = (np.load(r / "dynamics" / f"{name}.npy") for r in runs)
        assert a.tobytes() == b.tobytes(), name
    assert np.load(runs[0] / "features.npy").tobytes() == np.load(runs[1] / "features.npy").tobytes()
    config = json.loads((runs[1] / "config.json").read_text())
    assert config["image_size"] == 8 and config["workers"] == 2
    assert run_cli("record", "--resume", runs[1], "--image-size", 16) == 2
    assert "drop --image-size 16 (the run has 8)" in capsys.readouterr().err


def test_workers_loader_clean_view_and_shards(tmp_path):
    data = load_imagefolder(png_folder(tmp_path / "f"), image_size=8, workers=2)
    loader = data.loader(batch_size=4, shuffle=True, augment=True, seed=3, with_clean=True)
    loader.set_epoch(1)
    seen = []
    for x, y, idx in loader:
        clean = loader.clean(idx)
        fresh = torch.stack([loader.views.clean_tf(data_img) for data_img in map(loader.views.base.image, idx.tolist())])
        assert torch.equal(clean, fresh) and not torch.equal(x, clean)  # augmented vs clean view
        seen += idx.tolist()
    assert sorted(seen) == list(range(18))
    plain = data.loader(batch_size=6, shuffle=False, augment=False, with_clean=True)  # mlp: one view
    assert all(plain.clean(idx) is x for x, _, idx in plain)  # not decoded a second time
    shards = [data.loader(batch_size=4, shuffle=True, augment=False, rank=r, world_size=4) for r in range(4)]
    got = [i for s in shards for _, _, idx in s for i in idx.tolist()]
    assert len(got) == 20 and set(got) == set(range(18)) and len(shards[0]) == 2  # padded to 4 x 5


def test_score_without_val_and_train_on_test(tmp_path, capsys):
    root = png_folder(tmp_path / "f", eval_split=None)
    assert run_cli("record", "--dataset", "imagefolder", "--data-dir", root, "--image-size", 8, "--model", "mlp",
                   "--epochs", 2, "--batch-size", 6, "--out", tmp_path / "run", "--quiet") == 0
    assert run_cli("train", "--dataset", "imagefolder", "--data-dir", root, "--image-size", 8, "--model", "mlp",
                   "--epochs", 1, "--quiet") == 2
    err = capsys.readouterr().err
    assert "has no evaluation split" in err and len(err.strip().splitlines()) == 1
    root2 = png_folder(tmp_path / "g", eval_split="test")
    metrics = tmp_path / "m.json"
    assert run_cli("train", "--dataset", "imagefolder", "--data-dir", root2, "--image-size", 8, "--model", "mlp",
                   "--epochs", 1, "--workers", 2, "--metrics-out", metrics) == 0
    captured = capsys.readouterr()
    assert "evaluated on the test split (6 samples)" in captured.err and captured.out.startswith("test accuracy")
    m = json.loads(metrics.read_text())
    assert m["eval_split"] == "test" and m["image_size"] == 8 and m["train_samples"] == 18


def test_image_size_from_the_model_and_mismatch_up_front(tmp_path, capsys):
    pytest.importorskip("timm")
    spec = DataSpec("imagefolder", str(tmp_path))
    assert spec.for_model("timm:resnet10t").image_size == 176  # timm pretrained_cfg input_size
    assert spec.for_model("torchvision:vit_b_16").image_size == 224  # torchvision weights' crop size
    assert spec.for_model("small-cnn").image_size == 32
    assert DataSpec("imagefolder", str(tmp_path), image_size=40).for_model("timm:resnet10t").image_size == 40
    root = png_folder(tmp_path / "f", per_class=(2, 1))
    run = tmp_path / "run"
    assert run_cli("record", "--dataset", "imagefolder", "--data-dir", root, "--image-size", 32, "--model",
                   "torchvision:vit_b_16", "--epochs", 2, "--out", run, "--quiet") == 2
    err = capsys.readouterr().err
    assert "does not accept 3x32x32 images" in err and "--image-size 224" in err and len(err.strip().splitlines()) == 1
    assert not (run / "config.json").exists()


def test_bad_workers_is_one_line(tmp_path, capsys):
    root = png_folder(tmp_path / "f", per_class=(2, 1))
    assert run_cli("record", "--dataset", "imagefolder", "--data-dir", root, "--workers", -1, "--epochs", 2,
                   "--out", tmp_path / "run") == 2
    assert "--workers -1" in capsys.readouterr().err


def test_bench_with_timm_model_on_rgb_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("timm")
    import dataprune.cli.bench as cli_bench
    monkeypatch.setattr(cli_bench, "set_threads", lambda threads=None: torch.set_num_threads(1))  # shared CPU: no oversubscription
    root = png_folder(tmp_path / "f", per_class=(8, 2), classes=("ant", "bee", "cat"), size=(36, 36))
    out = tmp_path / "bench"
    assert run_cli("bench", "--dataset", "imagefolder", "--data-dir", root, "--image-size", 32, "--workers", 2,
                   "--score-model", "timm:resnet10t", "--train-models", "timm:resnet10t", "--methods",
                   "dyn-unc,random", "--prune-ratios", 0.25, "--seeds", 1, "--score-epochs", 3, "--window", 2,
                   "--train-epochs", 1, "--batch-size", 8, "--out", out, "--quiet") == 0
    assert "4 of 4 training cells finished" in capsys.readouterr().out  # full, 2 subsets, the baseline
    for name in ("table.md", "results.csv", "accuracy_vs_ratio.png", "datamaps.png", "removed_hard.png",
                 "score/timm:resnet10t/dynamics/file_list.txt"):
        assert (out / name).exists(), name
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["train_model"] for r in rows} == {"timm:resnet10t"} and rows[0]["train_samples"] == 24
    assert json.loads((out / "score/timm:resnet10t/config.json").read_text())["image_size"] == 32
    assert dp.Dynamics.open(out / "score/timm:resnet10t").num_samples == 24
    assert run_cli("bench", "--out", out, "--report-only", "--quiet") == 0
    assert run_cli("bench", "--dataset", "imagefolder", "--data-dir", root, "--score-model", "timm:nope",
                   "--out", tmp_path / "b2", "--quiet") == 2
    assert "timm has no model 'nope'" in capsys.readouterr().err


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports, at any depth (function-level too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names |= {f"{package}.{node.module}"} if node.module else {f"{package}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package + "."):
            names.add(node.module)
    return names


def test_train_package_has_no_import_cycle():
    folder = Path(imagefolder.__file__).parent
    graph = {f"dataprune.train.{p.stem}": _imports(p, "dataprune.train") for p in folder.glob("*.py")}
    assert "dataprune.train.data" not in graph["dataprune.train.imagefolder"]

    def reach(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reach(start, nxt, seen):
                    return True
        return False
    assert [m for m in graph if reach(m, m, set())] == []


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise comparisons need the same thread count
    yield
    torch.set_num_threads(before)


def test_resume_image_folder_run_with_other_workers(tmp_path, monkeypatch, one_thread):
    from test_resume import Crash, assert_same_run

    from dataprune.train import runs
    from dataprune.train.loop import TrainConfig
    root = png_folder(tmp_path / "f", per_class=(5, 1))
    spec = DataSpec("imagefolder", str(root), limit=12)  # size from the model: 32 for small-cnn
    cfg = TrainConfig(epochs=3, batch_size=4, seed=2)
    runs.score_run(tmp_path / "full", spec, cfg=cfg, signals=("prob", "correct"))
    from dataprune.train.rundir import RunDir
    save_state = RunDir.save_state

    def crash_after_epoch_2(run, config, state):
        save_state(run, config, state)
        if state["epoch"] == 2:
            raise Crash()
    monkeypatch.setattr(RunDir, "save_state", crash_after_epoch_2)
    with pytest.raises(Crash):
        runs.score_run(tmp_path / "crashed", spec, cfg=cfg, signals=("prob", "correct"))
    monkeypatch.undo()
    assert runs.resume_score_run(tmp_path / "crashed", workers=2).resumed_from == 2
    assert_same_run(tmp_path / "full", tmp_path / "crashed")
    config = json.loads((tmp_path / "crashed" / "config.json").read_text())
    assert config["image_size"] == 32 and config["limit"] == 12
