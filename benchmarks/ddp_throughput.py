"""``dataprune record --nproc 2`` on Fashion-MNIST: samples/s of this checkout (DDP under torch's
launcher) against an older checkout (e.g. the home-made launcher and gradient averaging of
cf3ef3f), interleaved ABBA so that drift in the machine's load cancels.

    git worktree add /tmp/engine-b-old cf3ef3f
    python benchmarks/ddp_throughput.py --old-src /tmp/engine-b-old/src [--limit 10000]
        [--epochs 2] [--threads 1] [--repeats 3] [--out benchmarks/results/ddp_throughput.md]

Each run is a fresh ``python -m dataprune record --nproc 2 --dataset fashion-mnist --limit L
--epochs E --threads T`` (``score`` for a checkout from before the command's rename) with
PYTHONPATH pointing at the checkout's ``src``. Training
samples/s = L * E / ``train_seconds`` (``config.json``: the epochs' wall time, clean-view
recording included, start-up excluded); wall samples/s also counts starting the processes.
Target: median ratio new / old >= 0.95.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import commit, emit, machine  # benchmarks/_report.py (the script's folder is on sys.path)

NEW_SRC = Path(__file__).resolve().parents[1] / "src"


def run_once(src: Path, args: argparse.Namespace, out: Path) -> tuple[float, float]:
    """(training samples/s, wall samples/s) of one ``record --nproc 2`` run of the checkout ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    env.pop("WORLD_SIZE", None)
    command = "record" if (src / "dataprune" / "cli" / "record.py").is_file() else "score"  # older checkouts
    cmd = [sys.executable, "-m", "dataprune", command, "--nproc", "2", "--dataset", "fashion-mnist",
           "--data-dir", str(args.data_dir), "--limit", str(args.limit), "--epochs", str(args.epochs),
           "--threads", str(args.threads), "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    seconds = json.loads((out / "config.json").read_text())["train_seconds"]
    samples = args.limit * args.epochs
    return samples / seconds, samples / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-src", type=Path, default=Path("/tmp/engine-b-old/src"))
    ap.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    srcs = {"this checkout (DDP, torch's launcher)": NEW_SRC, f"old checkout ({args.old_src})": args.old_src}
    names = list(srcs)
    rates: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    tmp = Path(tempfile.mkdtemp(prefix="ddp_throughput-"))
    try:
        for r in range(args.repeats):
            for name in (names if r % 2 == 0 else names[::-1]):
                out = tmp / f"{r}-{names.index(name)}"
                rates[name].append(run_once(srcs[name], args, out))
                shutil.rmtree(out)
                print(f"repeat {r} {name}: {rates[name][-1][0]:.0f} samples/s training, "
                      f"{rates[name][-1][1]:.0f} wall", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    med = {n: (statistics.median(t for t, _ in v), statistics.median(w for _, w in v)) for n, v in rates.items()}
    ratio = med[names[0]][0] / med[names[1]][0]
    wall_ratio = med[names[0]][1] / med[names[1]][1]
    report = "\n".join([
        "# `dataprune record --nproc 2` throughput: DDP under torch's launcher vs the old launcher",
        "",
        f"command: `python benchmarks/ddp_throughput.py {' '.join(sys.argv[1:])}`",
        f"machine: {machine().rsplit(', threads', 1)[0]}",
        f"load average (1/5/15 min) before: {' '.join(load_before)}, after: {' '.join(load_after)} "
        "(the 2 cores are shared with other agents' jobs: absolute samples/s are contended; the ratio is "
        "measured in the same run, interleaved ABBA)",
        f"this checkout: {commit(NEW_SRC)}; old checkout: {commit(args.old_src)}; date: {time.strftime('%Y-%m-%d %H:%M')}",
        f"workload: Fashion-MNIST, first {args.limit} training samples, small-cnn, {args.epochs} epochs, "
        f"batch 256, clean-view recording of every signal, 2 ranks (gloo) x {args.threads} thread(s)",
        "",
        "| code | median training samples/s | median wall samples/s | per repeat (training) |",
        "| --- | ---: | ---: | --- |",
        *(f"| {n} | {med[n][0]:.0f} | {med[n][1]:.0f} | {', '.join(f'{t:.0f}' for t, _ in rates[n])} |"
          for n in names),
        "",
        f"ratio this / old, training samples/s: **{ratio:.3f}** (target >= 0.95); wall (with start-up): "
        f"{wall_ratio:.3f}",
        "",
    ])
    emit(report, args.out)


if __name__ == "__main__":
    main()
