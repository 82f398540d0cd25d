"""The default `dataprune train --prune-at` recipe against the matched-compute baseline
`dataprune train --budget C` at the same cost, run as a user runs them, paired by seed.

    python benchmarks/default_vs_budget.py --seeds 0,1,2 --threads 1 \
        --out benchmarks/results/default_vs_budget_60k

Each run's metrics go to OUT/{default,budget}-seed{S}.json (a finished one is not rerun, so
an interrupted comparison resumes); run folders go to --runs. The report (OUT.md) gives each
arm's test top-1 and cost per seed and Δ = default − budget, mean ± sample std over seeds.
Extra arguments after `--` go to both commands (e.g. `-- --dataset idx --data-dir DIR`).
`--label-noise RATE` trains both on a copy of the IDX dataset (default: Fashion-MNIST) whose
training labels are flipped by `symmetric_label_noise` (seed `--noise-seed`), written once under
--runs as a user would write their own noisy data; the test set stays clean.
"""
from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from dataprune.bench.noise import symmetric_label_noise
from dataprune.train.data import DATASETS, find_idx, read_idx

from _report import emit, machine  # benchmarks/_report.py (the script's folder is on sys.path)

ARMS = {"default": ["--prune-at"], "budget": ["--budget", "0.75"]}


def run_arm(arm: str, seed: int, args: argparse.Namespace, extra: list[str]) -> dict:
    metrics = args.out / f"{arm}-seed{seed}.json"
    if not metrics.exists():
        cmd = [sys.executable, "-m", "dataprune", "train", "--model", args.model, "--epochs", str(args.epochs),
               "--seed", str(seed), "--threads", str(args.threads), *ARMS[arm], "--out",
               str(args.runs / f"{arm}-seed{seed}"), "--force", "--metrics-out", str(metrics), "--quiet", *extra]
        subprocess.run(cmd, check=True)
    return json.loads(metrics.read_text())


def noisy_copy(data_dir: Path, rate: float, seed: int, root: Path) -> Path:
    """``root/noise{rate}-seed{seed}``: the IDX files of ``data_dir`` (linked) with the training
    labels replaced by a noisy copy (written once; an existing copy is reused)."""
    out = root / f"noise{rate:g}-seed{seed}"
    labels = out / "train-labels-idx1-ubyte"
    if labels.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for split, kind in (("train", "images"), ("t10k", "images"), ("t10k", "labels")):
        src = find_idx(data_dir, split, kind)
        (out / src.name).unlink(missing_ok=True)
        (out / src.name).symlink_to(src.resolve())
    y = read_idx(find_idx(data_dir, "train", "labels"))
    noisy, _ = symmetric_label_noise(y.astype(np.int64), rate, int(y.max()) + 1, seed=seed)
    tmp = labels.with_suffix(".tmp")  # IDX: magic (0, 0, uint8, 1 dim), N, then the labels
    tmp.write_bytes(struct.pack(">BBBBI", 0, 0, 0x08, 1, len(noisy)) + noisy.astype(np.uint8).tobytes())
    tmp.rename(labels)
    return out


def data_note(args: argparse.Namespace, extra: list[str]) -> str:
    if args.label_noise:
        return (f"{args.data_dir}, all training images, {100 * args.label_noise:g} % of the training labels flipped "
                f"(symmetric, seed {args.noise_seed}); test labels clean")
    return " ".join(extra) or "fashion-mnist, all 60000 training images"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="folder of the metrics files; the report is OUT.md")
    p.add_argument("--runs", type=Path, default=Path("runs/default_vs_budget"), help="run folders")
    p.add_argument("--label-noise", type=float, default=0.0, help="share of training labels flipped (default 0)")
    p.add_argument("--noise-seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=DATASETS["fashion-mnist"].default_dir, help="IDX dataset of --label-noise")
    args, extra = p.parse_known_args()
    extra = [a for a in extra if a != "--"]
    noise = ""
    if args.label_noise:
        extra += ["--dataset", "idx", "--data-dir", str(noisy_copy(args.data_dir, args.label_noise, args.noise_seed,
                                                                    args.runs / "data"))]
        noise = f" --label-noise {args.label_noise:g} --noise-seed {args.noise_seed}"
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    got = {(arm, s): run_arm(arm, s, args, extra) for s in seeds for arm in ARMS}
    acc = {k: 100 * m["test_accuracy"] for k, m in got.items()}
    deltas = [acc["default", s] - acc["budget", s] for s in seeds]
    sd = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
    report = "\n".join([
        f"# `train --prune-at` (default) vs `train --budget 0.75`, {args.model} E={args.epochs}",
        "",
        f"Command: `python benchmarks/default_vs_budget.py --seeds {args.seeds} --model {args.model} "
        f"--epochs {args.epochs} --threads {args.threads}{noise} --out {args.out}"
        + (f" -- {' '.join(extra)}" if extra and not noise else "") + "`",
        f"Machine: {machine()} (this process; each run used --threads {args.threads}). Data: "
        f"{data_note(args, extra)}.",
        "",
        "| seed | default: test top-1 | default: cost | budget: test top-1 | budget: cost | Δ |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {s} | {acc['default', s]:.2f} | {got['default', s]['full_equivalent']:.3f} | "
          f"{acc['budget', s]:.2f} | {got['budget', s]['full_equivalent']:.3f} | {deltas[i]:+.2f} |"
          for i, s in enumerate(seeds)),
        "",
        f"Δ (default − budget), mean ± sample std over {len(seeds)} seeds: **{statistics.mean(deltas):+.2f} ± {sd:.2f}** "
        "points (ratio of costs default / budget: "
        f"{statistics.mean(got['default', s]['full_equivalent'] / got['budget', s]['full_equivalent'] for s in seeds):.3f})",
        "",
    ])
    emit(report, args.out.parent / f"{args.out.name}.md")  # not with_suffix: a name may hold a dot


if __name__ == "__main__":
    main()
