"""Wall time of pruning inside one run, robust to a shared machine: median epoch seconds of a
full-set epoch, a recording epoch (train view, the signals el2n/dual/dyn-unc/forgetting need)
and an epoch on a 1-R subset, interleaved in one process so drift cancels; then the wall
ratio a run of E epochs with T scoring epochs gets (T x recording + selection + (E-T) x
subset) / (E x full), next to its full_equivalent (sample passes / E*N).

    python benchmarks/one_run_wall.py [--limit 20000] [--reps 3] [--out benchmarks/results/one_run_wall.md]

Target (issue 11): wall ratio within 0.05 of full_equivalent.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import provenance  # noqa: E402

from dataprune import Dynamics, Recorder  # noqa: E402
from dataprune.train.data import InMemoryLoader, load_dataset  # noqa: E402
from dataprune.train.loop import TrainConfig, make_optimizer, seed_everything, train  # noqa: E402
from dataprune.train.models import build_model  # noqa: E402
from dataprune.train.prune_at import prune_scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist", limit=args.limit)
    n = len(data.train_y)
    cfg = TrainConfig(epochs=10 * args.reps)
    seed_everything(0)
    net = build_model("small-cnn", data.num_classes, data.train_x.shape[1], data.train_x.shape[-1])
    loader = InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std, augment=True)
    opt, sched = make_optimizer(net, cfg, len(loader))
    keep = np.sort(np.random.default_rng(0).permutation(n)[: n - round(args.ratio * n)])
    times: dict[str, list[float]] = {"full": [], "recording": [], "subset": []}
    select_s = []
    with tempfile.TemporaryDirectory() as tmp:
        epoch = 0
        for rep in range(args.reps):
            for kind in times:
                rec = Recorder(n, Path(tmp) / f"d{rep}", data.num_classes, view="train", labels=data.train_y.numpy(),
                               signals=("prob", "correct", "el2n")) if kind == "recording" else None
                loader.indices = torch.from_numpy(keep) if kind == "subset" else torch.arange(n)
                t0 = time.perf_counter()
                train(net, loader, cfg, recorder=rec, record_view="train", optimizer=opt, scheduler=sched,
                      start_epoch=epoch, stop_epoch=epoch + 1)
                times[kind].append(time.perf_counter() - t0)
                epoch += 1
                if rec is not None:
                    rec.close()
                    t0 = time.perf_counter()
                    prune_scores(Dynamics.open(Path(tmp) / f"d{rep}"), "el2n", args.ratio, epoch=0)
                    select_s.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    sel = statistics.median(select_s)
    lines = ["# Wall time of one-run pruning (small-cnn)", "",
             *provenance("one_run_wall.py", " (2 cores shared with other jobs: epochs interleaved so drift cancels)"),
             f"workload: Fashion-MNIST N={n}, batch 256, subset 1-R = {1 - args.ratio:g}, {args.reps} interleaved "
             "epochs of each kind", "",
             "| epoch kind | median s | epochs (s) |", "| --- | ---: | --- |"]
    lines += [f"| {k} | {med[k]:.2f} | {', '.join(f'{t:.2f}' for t in v)} |" for k, v in times.items()]
    lines += ["", f"selection (el2n score + select): {sel:.3f} s; recording / full = {med['recording'] / med['full']:.3f}; "
              f"subset / full = {med['subset'] / med['full']:.3f} (samples: {1 - args.ratio:g})", "",
              "| E | T | full_equivalent | predicted wall vs full | difference |", "| ---: | ---: | ---: | ---: | ---: |"]
    for e, t in ((10, 1), (10, 2), (10, 3), (15, 3)):
        cost = (t + (e - t) * (1 - args.ratio)) / e
        wall = (t * med["recording"] + sel + (e - t) * med["subset"]) / (e * med["full"])
        lines.append(f"| {e} | {t} | {cost:.3f} | {wall:.3f} | {wall - cost:+.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
