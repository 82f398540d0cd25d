"""The default `dataprune train --prune-at` recipe against the matched-compute baseline
`dataprune train --budget C` at the same cost, run as a user runs them, paired by seed.

    python benchmarks/default_vs_budget.py --seeds 0,1,2 --threads 1 \
        --out benchmarks/results/default_vs_budget_60k

Each run's metrics go to OUT/{default,budget}-seed{S}.json (a finished one is not rerun, so
an interrupted comparison resumes); run folders go to --runs. The report (OUT.md) gives each
arm's test top-1 and cost per seed and Δ = default − budget, mean ± sample std over seeds.
Extra arguments after `--` go to both commands (e.g. `-- --dataset idx --data-dir DIR`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="folder of the metrics files; the report is OUT.md")
    p.add_argument("--runs", type=Path, default=Path("runs/default_vs_budget"), help="run folders")
    args, extra = p.parse_known_args()
    extra = [a for a in extra if a != "--"]
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
        f"--epochs {args.epochs} --threads {args.threads} --out {args.out}"
        + (f" -- {' '.join(extra)}" if extra else "") + "`",
        f"Machine: {machine()} (this process; each run used --threads {args.threads}). Data: "
        f"{' '.join(extra) or 'fashion-mnist, all 60000 training images'}.",
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
    emit(report, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
