"""Streaming image folders: images/s of ``dataprune record``'s loader against a plain torchvision
``ImageFolder`` + ``DataLoader`` loop with the same transforms and workers, and peak memory at
two folder sizes.

    python benchmarks/imagefolder_throughput.py [--images 20000] [--small 5000] [--size 64]
        [--image-size 32] [--workers 2] [--repeats 3] [--root /tmp/dataprune_folders]
        [--out benchmarks/results/imagefolder_throughput.md]

Generates ``--images`` and ``--small`` random JPEGs (``--size`` px, 10 classes) under
``--root`` once (not committed). Throughput: one epoch each of the score loader (training view
and clean view per image, as with ``--record-view clean``) and of the baseline whose
transform returns the same two views, interleaved ABBA so drift cancels; median of
``--repeats``, after one untimed warm-up epoch each. Target: ratio >= 0.9. Memory: one epoch of the score loader in a fresh process
per folder size, peak RSS of the main process and of the largest worker; target: 20k within
10 % of 5k.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dataprune.train.imagefolder import folder_transforms, load_imagefolder
from _report import emit, provenance  # benchmarks/_report.py (the script's folder is on sys.path)

CLASSES = 10
BATCH = 256


def make_folder(root: Path, n: int, size: int) -> Path:
    """``root/train/c<k>/<i>.jpg``: ``n`` random ``size`` x ``size`` JPEGs in 10 classes (reused)."""
    from PIL import Image
    done = root / f".complete-{n}-{size}"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / "train" / f"c{i % CLASSES}"
        d.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (1, 1, 3)) * np.ones((size, size, 1))
        img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i:06d}.jpg", quality=90)
    done.touch()
    return root


def epoch_dataprune(root: Path, image_size: int, workers: int, epoch: int) -> int:
    data = load_imagefolder(root, image_size=image_size, workers=workers)
    loader = data.loader(batch_size=BATCH, shuffle=True, augment=True, seed=0, with_clean=True)  # score's loader
    loader.set_epoch(epoch)
    n = 0
    for _, _, idx in loader:
        loader.clean(idx)  # the clean view, fetched as the training loop does
        n += len(idx)
    return n


class TwoViews:
    """The baseline's transform: the same training and clean views from one decoded image."""

    def __init__(self, image_size: int) -> None:
        self.train = folder_transforms(image_size, augment=True)
        self.clean = folder_transforms(image_size, augment=False)

    def __call__(self, img):
        return self.train(img), self.clean(img)


def epoch_baseline(root: Path, image_size: int, workers: int, epoch: int) -> int:
    from torchvision.datasets import ImageFolder
    torch.manual_seed(epoch)
    dataset = ImageFolder(str(root / "train"), transform=TwoViews(image_size))
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers)
    return sum(len(y) for (_, _), y in loader)


def peak_rss(root: Path, image_size: int, workers: int) -> dict[str, float]:
    """One score-loader epoch in a fresh process: peak RSS (MB) of it and of its largest worker."""
    code = (f"import json, resource, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import torch; torch.set_num_threads(1); from imagefolder_throughput import epoch_dataprune; "
            f"n = epoch_dataprune(__import__('pathlib').Path({str(root)!r}), {image_size}, {workers}, 0); "
            f"self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            f"child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
            f"print(json.dumps({{'n': n, 'main_mb': self_kb / 1024, 'worker_mb': child_kb / 1024}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--small", type=int, default=5000)
    ap.add_argument("--size", type=int, default=64, help="side of the generated JPEGs")
    ap.add_argument("--image-size", type=int, default=32, help="crop size of the loaders (score's default)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", type=Path, default=Path("/tmp/dataprune_folders"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    big = make_folder(args.root / f"n{args.images}", args.images, args.size)
    small = make_folder(args.root / f"n{args.small}", args.small, args.size)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rates: dict[str, list[float]] = {"dataprune record loader": [], "torchvision ImageFolder + DataLoader": []}
    fns = {"dataprune record loader": epoch_dataprune, "torchvision ImageFolder + DataLoader": epoch_baseline}
    names = list(rates)
    for name in names:  # warm-up (first-call imports and caches), not timed
        fns[name](small, args.image_size, args.workers, 0)
    for r in range(args.repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            n = fns[name](big, args.image_size, args.workers, r)
            rates[name].append(n / (time.perf_counter() - t0))
            print(f"repeat {r} {name}: {rates[name][-1]:.0f} images/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med[names[0]] / med[names[1]]
    mem = {n: peak_rss(root, args.image_size, args.workers) for n, root in ((args.small, small), (args.images, big))}
    for n, m in mem.items():
        print(f"{n} images: main {m['main_mb']:.0f} MB, largest worker {m['worker_mb']:.0f} MB", flush=True)
    growth = {k: mem[args.images][k] / mem[args.small][k] - 1 for k in ("main_mb", "worker_mb")}
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    report = "\n".join([
        "# Streaming image folders: loader throughput and memory",
        "",
        *provenance("imagefolder_throughput.py"),
        f"load average (1/5/15 min) before: {' '.join(load_before)}, after: {' '.join(load_after)} "
        "(the 2 cores are shared with other jobs: absolute images/s are contended; the ratio is measured "
        "in the same run, interleaved)",
        f"workload: {args.images} random {args.size}x{args.size} JPEGs in {CLASSES} classes, crops of "
        f"{args.image_size} px, batch {BATCH}, {args.workers} DataLoader workers, main process 1 thread; "
        "per image a training view (pad-and-crop + flip) and a clean view (resize + centre crop), "
        "torchvision v2 transforms, normalised float32",
        "",
        "| loader | median images/s | per repeat |",
        "| --- | ---: | --- |",
        *(f"| {k} | {med[k]:.0f} | {', '.join(f'{v:.0f}' for v in rates[k])} |" for k in names),
        "",
        f"ratio dataprune / torchvision: **{ratio:.3f}** (target >= 0.9)",
        "",
        "| images in the folder | peak RSS main process | peak RSS largest worker |",
        "| ---: | ---: | ---: |",
        *(f"| {n} | {m['main_mb']:.0f} MB | {m['worker_mb']:.0f} MB |" for n, m in mem.items()),
        "",
        f"growth from {args.small} to {args.images} images: main **{100 * growth['main_mb']:+.1f} %**, "
        f"worker **{100 * growth['worker_mb']:+.1f} %** (target: within 10 %)",
        "",
    ])
    emit(report, args.out)


if __name__ == "__main__":
    main()
