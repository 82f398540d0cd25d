"""Check ``dyn_unc(..., semantics="official")`` against the official code itself.

    python benchmarks/official_semantics.py --official-repo PATH/TO/Dataset-Pruning

PATH is a clone of BAAI-DCAI/Dataset-Pruning, with or without a work tree (nothing of it is
copied into this repository). In a
temporary folder this script

1. writes a synthetic official run: ``pred_prob_history/prob_{epoch}.txt`` (``np.savetxt``,
   as the official training writes them; 0 = sample not seen that epoch) and a
   ``file_list.txt``. Some samples are missed in random epochs, some are first seen late,
   a few never;
2. runs the official ``ImageNet/get_coreset.py`` unchanged in a subprocess (``runpy``, so its
   ``dynamic_uncertainty`` array can be saved) and keeps its output file list;
3. scores the same files with dataprune: float64 (the text files read directly), and the
   float16 store ``dataprune import-official`` writes, both with ``semantics="official"``
   and the default ``"paper"``; selects ``keep=int(N*fraction)`` as the official code;
4. writes the comparison to ``--out`` (Markdown).
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import dataprune as dp  # noqa: E402
from dataprune.interop import import_official  # noqa: E402

RUNNER = """
import runpy, sys, numpy
scores = sys.argv[6]
sys.argv = ["get_coreset.py", "--input", sys.argv[1], "--dataset_file_list", sys.argv[2],
            "--fraction", sys.argv[3], "--window", sys.argv[4], "--output", sys.argv[5]]
g = runpy.run_path({script!r}, run_name="__main__")
numpy.save(scores, g["dynamic_uncertainty"])
"""

def synthetic_run(root: Path, n: int, k: int, seed: int) -> np.ndarray:
    """Write the official layout under ``root``; returns the (K, N) float64 probabilities (0 = unseen)."""
    rng = np.random.default_rng(seed)
    speed = rng.gamma(2.0, 0.3, n)
    onset = rng.random(n) * k
    t = np.arange(k)[:, None]
    prob = 1.0 / (1.0 + np.exp(-speed * (t - onset))) * 0.97 + rng.normal(0, 0.05, (k, n))
    prob = np.clip(prob, 1e-4, 1.0)
    prob[rng.random((k, n)) < 0.1] = 0.0                   # missed by the sampler this epoch
    late = rng.random(n) < 0.05
    prob[: k // 2, late] = 0.0                             # first seen halfway
    prob[:, rng.random(n) < 0.005] = 0.0                   # never seen
    hist = root / "pred_prob_history"
    hist.mkdir(parents=True)
    for e in range(k):
        np.savetxt(hist / f"prob_{e}.txt", prob[e])
    labels = rng.integers(0, 10, n)
    (root / "file_list.txt").write_text("".join(f"/c{y}/img{i}.JPEG {y}\n" for i, y in enumerate(labels)))
    return prob


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official-repo", required=True, type=Path)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--fraction", type=float, default=0.75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "official_semantics.md")
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(args.official_repo), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        script = args.official_repo / "ImageNet" / "get_coreset.py"
        if not script.is_file():  # a bare clone: take the file from its HEAD
            script = tmp / "get_coreset.py"
            script.write_bytes(subprocess.run(["git", "-C", str(args.official_repo), "show",
                                               "HEAD:ImageNet/get_coreset.py"], check=True,
                                              capture_output=True).stdout)
        run = tmp / "official"
        prob = synthetic_run(run, args.samples, args.epochs, args.seed)
        scores_path, subset = tmp / "official_scores.npy", tmp / "official_subset.txt"
        code = RUNNER.format(script=str(script))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, str(run), str(run / "file_list.txt"), str(args.fraction),
                        str(args.window), str(subset), str(scores_path)], check=True, cwd=tmp)
        official_s = time.perf_counter() - t0
        official = np.load(scores_path)
        lines = (run / "file_list.txt").read_text().splitlines()
        official_keep = sorted(lines.index(line) for line in subset.read_text().splitlines())
        keep = int(args.samples * args.fraction)
        dyn = import_official(run, tmp / "store", file_list=run / "file_list.txt")
        rows = []
        for name, source in (("float64 text values", prob), ("float16 store (import-official)", dyn.prob)):
            for semantics in ("official", "paper"):
                t0 = time.perf_counter()
                s = dp.methods.dyn_unc(np.where(prob == 0, np.nan, prob) if source is prob else source,
                               args.window, semantics=semantics)
                seconds = time.perf_counter() - t0
                finite = np.isfinite(s)
                scale = 1.0 if semantics == "official" else 10.0
                diff = np.abs(s[finite] * scale - official[finite])
                kept = dp.select(s, keep=keep, nan_policy="prune")
                same = len(set(kept.tolist()) & set(official_keep))
                rows.append((name, semantics, float(diff.max()), float(np.median(diff)), int((~finite).sum()),
                             same, seconds))
    observed_all = int(((prob != 0).all(0)).sum())
    with open(args.out, "w") as f:
        f.write("# Dyn-Unc official semantics vs the official code\n\n")
        f.write(f"command: `python benchmarks/official_semantics.py --official-repo PATH --samples {args.samples} "
                f"--epochs {args.epochs} --window {args.window} --fraction {args.fraction} --seed {args.seed}`\n")
        f.write(f"official code: BAAI-DCAI/Dataset-Pruning {commit}, `ImageNet/get_coreset.py` run unchanged "
                f"({official_s:.1f} s)\n")
        f.write(f"machine: {platform.processor() or platform.machine()}, 2-core VM shared with other jobs, "
                f"python {platform.python_version()}, numpy {np.__version__}\n")
        f.write(f"data: synthetic, N={args.samples}, K={args.epochs}, J={args.window}; {args.samples - observed_all} "
                f"samples miss at least one epoch (0 in the text files); kept count int(N*{args.fraction}) = {keep}\n\n")
        f.write("| input | semantics | max abs diff vs official (x10 for paper) | median | NaN scores | "
                f"kept sets shared (of {keep}) | scoring s |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
        for name, sem, mx, med, nan, same, sec in rows:
            f.write(f"| {name} | {sem} | {mx:.3g} | {med:.3g} | {nan} | {same} | {sec:.3f} |\n")
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
