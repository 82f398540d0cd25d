"""Recorder overhead: median epoch time of small-cnn training with the Recorder (train view)
over the same training without it, epochs interleaved in one process so drift cancels.

    python benchmarks/recorder_overhead.py [--epochs 5] [--limit N] [--out FILE (appended to)]

Target: ratio <= 1.03. Epoch times on a shared or virtualised 2-core machine swing by 10-30 %
from one epoch to the next, more than the overhead itself, so the script also times the
Recorder's own calls (``update`` and ``end_epoch``, wall clock, summed per epoch): 1 + their
median per epoch / the median epoch without the Recorder is the direct estimate.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dataprune import Recorder
from dataprune.train.data import InMemoryLoader, load_dataset
from dataprune.train.loop import TrainConfig, make_optimizer, seed_everything, train
from dataprune.train.models import build_model
from _report import emit, provenance  # benchmarks/_report.py (the script's folder is on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--model", default="small-cnn")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    data = load_dataset("fashion-mnist", limit=args.limit)
    n = len(data.train_y)
    cfg = TrainConfig(epochs=args.epochs)
    runs = {}
    for name in ("without", "with"):
        seed_everything(0)
        model = build_model(args.model, data.num_classes)
        loader = InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std,
                                batch_size=cfg.batch_size, augment=True, seed=0)
        opt, sched = make_optimizer(model, cfg, len(loader))
        runs[name] = {"model": model, "loader": loader, "opt": opt, "sched": sched, "times": []}
    tmp = tempfile.TemporaryDirectory()
    recorder = Recorder(n, Path(tmp.name) / "dyn", data.num_classes, epochs=args.epochs, view="train")
    inside: list[float] = []  # seconds inside the Recorder's calls, per epoch with it

    def timed(call):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return call(*a, **k)
            finally:
                inside[-1] += time.perf_counter() - t0
        return wrapper

    recorder.update, recorder.end_epoch = timed(recorder.update), timed(recorder.end_epoch)
    for epoch in range(args.epochs):
        for name in ("without", "with") if epoch % 2 == 0 else ("with", "without"):
            r = runs[name]
            if name == "with":
                inside.append(0.0)
            t0 = time.perf_counter()
            train(r["model"], r["loader"], dataclasses.replace(cfg, epochs=epoch + 1), start_epoch=epoch,
                  optimizer=r["opt"], scheduler=r["sched"], record_view="train",
                  recorder=recorder if name == "with" else None)
            r["times"].append(time.perf_counter() - t0)
            print(f"epoch {epoch} {name:>7} recorder: {r['times'][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v["times"]) for k, v in runs.items()}
    ratio = med["with"] / med["without"]
    direct = 1 + statistics.median(inside) / med["without"]
    report = "\n".join([
        "# Recorder overhead (train view)",
        "",
        *provenance("recorder_overhead.py"),
        f"workload: {args.model} on Fashion-MNIST, N={n}, batch {cfg.batch_size}, {args.epochs} epochs each, interleaved",
        "",
        "| | median epoch s | epochs (s) |",
        "| --- | ---: | --- |",
        *(f"| {k} recorder | {med[k]:.3f} | {', '.join(f'{t:.2f}' for t in runs[k]['times'])} |"
          for k in ("without", "with")),
        "",
        f"ratio with/without: **{ratio:.3f}** (target <= 1.03)",
        "",
        f"inside the Recorder's calls per epoch: {', '.join(f'{t:.3f}' for t in inside)} s; "
        f"direct estimate 1 + median / median epoch without: **{direct:.4f}**",
        "",
    ])
    emit(report, args.out, append=True)


if __name__ == "__main__":
    main()
