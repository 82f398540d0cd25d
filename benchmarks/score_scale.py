"""Dyn-Unc scoring at ImageNet-21K scale: time, peak memory and disk, against a read floor and
the official pipeline's approach, all measured in one run on one machine.

    python benchmarks/score_scale.py --samples 14200000 --epochs 90

1. Writes a synthetic float16 dynamics store of N x K (``dataprune.store.StoreWriter``, as the
   Recorder does), with learning-curve-like trajectories and a few unobserved entries.
2. Measures, each in a fresh process (so peak RSS is its own), alternating, ``--repeats`` times:
   - floor: one plain NumPy pass reading the store chunk by chunk into float32 and summing;
   - floor-pread: the same read done the way dataprune reads (preadv + torch float16 cast), summing;
   - dataprune: ``dp.score("dyn-unc", dp.Dynamics.open(store), window=J)``.
3. The official pipeline's approach at ``--official-samples`` (per-epoch ``%.18e`` text files,
   ``np.loadtxt`` per epoch, a float64 (N, J) history, a list of K-J float64 std vectors,
   mean), extrapolated linearly per sample to N; its scores are checked against dataprune's.
4. Writes benchmarks/results/score_scale.{json,md}; deletes the work folder unless ``--keep``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_mb() -> float:
    """Peak RSS of this process image (VmHWM; ru_maxrss would include the parent's at exec)."""
    return _status_mb("VmHWM")


def current_rss_mb() -> float:
    return _status_mb("VmRSS")


# ----------------------------------------------------------------------------- synthetic data
def trajectories(n: int, epochs: int, seed: int = 0, chunk: int = 1 << 21):
    """Yield (K,) rows... as epochs: prob[e] for e in 0..K-1, float32 (N,), NaN = unobserved.

    Sample i learns at epoch b_i with speed a_i (some never: hard/mislabeled), plus noise;
    about 0.02 % of entries per epoch are unobserved (a DataLoader's dropped last batch).
    """
    rng = np.random.default_rng(seed)
    a = rng.gamma(2.0, 0.15, n).astype(np.float32)
    b = (rng.random(n, dtype=np.float32) * 1.2 * epochs).astype(np.float32)
    ceiling = np.where(rng.random(n) < 0.1, 0.3, 0.98).astype(np.float32)
    for e in range(epochs):
        row = np.empty(n, np.float32)
        for s in range(0, n, chunk):
            t = (e - b[s:s + chunk]) * a[s:s + chunk]
            r = ceiling[s:s + chunk] / (1 + np.exp(-t))
            r += 0.05 * rng.standard_normal(len(r), dtype=np.float32)
            row[s:s + chunk] = np.clip(r, 0.0005, 1.0)
        row[rng.integers(0, n, max(1, n // 5000))] = np.nan
        yield row


def make_store(path: Path, n: int, epochs: int) -> float:
    from dataprune.store import StoreWriter
    t0 = time.perf_counter()
    w = StoreWriter(path, num_samples=n, num_classes=1000, signals=["prob"], capacity=epochs,
                    view="clean", labels=np.arange(n) % 1000, force=True)
    for row in trajectories(n, epochs):
        w.write_epoch({"prob": row})
    return time.perf_counter() - t0


def write_official(path: Path, store: Path, n: int, epochs: int) -> dict:
    """The official format from the first ``n`` samples of the store: one prob_{epoch}.txt
    per epoch, '%.18e' per line, 0 = not seen (so both pipelines score identical inputs)."""
    hist = path / "pred_prob_history"
    hist.mkdir(parents=True, exist_ok=True)
    prob = np.load(store / "prob.npy", mmap_mode="r")
    t0 = time.perf_counter()
    for e in range(epochs):
        v = np.nan_to_num(np.asarray(prob[e, :n], np.float64), nan=0.0)
        np.savetxt(hist / f"prob_{e}.txt", v, fmt="%.18e")
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in hist.iterdir())
    return {"write_seconds": seconds, "bytes": size}


# ----------------------------------------------------------------------------- measured phases
def phase_floor(store: Path, args) -> dict:
    prob = np.load(store / "prob.npy", mmap_mode="r")[: args.epochs]
    base = current_rss_mb()
    t0 = time.perf_counter()
    total, c = 0.0, 65536
    for a in range(0, prob.shape[1], c):
        total += float(np.asarray(prob[:, a:a + c], np.float32).sum(dtype=np.float64))
    return {"seconds": time.perf_counter() - t0, "base_rss_mb": base, "checksum": total}


def phase_floor_pread(store: Path, args) -> dict:
    import torch  # noqa: F401  (import cost outside the timing, as in phase_dataprune)
    import dataprune  # noqa: F401
    m = sys.modules["dataprune.methods.dyn_unc"]
    prob = np.load(store / "prob.npy", mmap_mode="r")[: args.epochs]
    reader = m._FileRows.of(prob)
    base = current_rss_mb()
    t0 = time.perf_counter()
    total, c = 0.0, max(1, m._READ_ELEMENTS // prob.shape[0])
    for a in range(0, prob.shape[1], c):
        total += float(m._to_float32(reader.read(a, min(prob.shape[1], a + c))).sum(dtype=np.float64))
    return {"seconds": time.perf_counter() - t0, "base_rss_mb": base, "checksum": total}


def phase_dataprune(store: Path, args) -> dict:
    import torch
    import dataprune as dp
    torch.set_num_threads(1)
    base = current_rss_mb()
    t0 = time.perf_counter()
    u = dp.score("dyn-unc", dp.Dynamics.open(store), window=args.window)
    seconds = time.perf_counter() - t0
    np.save(store.parent / "dataprune_scores_head.npy", u[: args.official_samples])
    return {"seconds": seconds, "base_rss_mb": base, "nan_scores": int(np.isnan(u).sum())}


def phase_official(official: Path, args) -> dict:
    """The official pipeline's approach (re-implemented, same data structures): per epoch
    loadtxt -> float64 vector; a float64 (N, J) history where only observed (non-zero)
    samples shift in their new value; after epoch J-1 and before the last epoch, append the
    float64 std (ddof=1) of every history row to a list; stack the list; mean over it."""
    files = sorted((official / "pred_prob_history").iterdir(), key=lambda f: int(f.stem.split("_")[1]))
    base = current_rss_mb()
    t0 = time.perf_counter()
    hist = None
    stds = []
    for e, f in enumerate(files):
        p = np.loadtxt(f, dtype=np.float64)
        if hist is None:
            hist = np.zeros((len(p), args.window))
        seen = np.nonzero(p)[0]
        hist[seen] = np.concatenate([hist[seen, 1:], p[seen, None]], axis=1)
        if args.window - 1 <= e < len(files) - 1:
            stds.append(hist.std(axis=1, ddof=1))
    u = np.mean(np.array(stds), axis=0)
    seconds = time.perf_counter() - t0
    np.save(official / "official_scores.npy", u)
    return {"seconds": seconds, "base_rss_mb": base}


PHASES = {"floor": phase_floor, "floor-pread": phase_floor_pread, "dataprune": phase_dataprune,
          "official": phase_official}


def run_phase(name: str, path: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--phase-path", str(path),
           "--epochs", str(args.epochs), "--window", str(args.window),
           "--official-samples", str(args.official_samples)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report
def machine() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "L2 cache", "L3 cache"):
                info[key.strip()] = val.strip()
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        info["MemTotal"] = f.readline().split(":")[1].strip()
    import torch
    info["torch"] = torch.__version__
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=14_200_000)
    ap.add_argument("--epochs", type=int, default=90)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--official-samples", type=int, default=200_000,
                    help="N for the official approach (extrapolated per sample to --samples)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "_work" / "score_scale"))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the synthetic store and text files")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--phase-path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        result = PHASES[args.phase](Path(args.phase_path), args)
        result["peak_rss_mb"] = rss_mb()
        print(json.dumps(result))
        return

    command = "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:])
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    n, k, j, n_off = args.samples, args.epochs, args.window, min(args.official_samples, args.samples)
    args.official_samples = n_off
    report: dict = {"command": command, "machine": machine(), "samples": n, "epochs": k, "window": j,
                    "load_average_start": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    print(f"writing a synthetic {n} x {k} float16 store ...", flush=True)
    store = work / "store"
    report["store_write_seconds"] = make_store(store, n, k)
    prob_bytes = (store / "prob.npy").stat().st_size
    report["store_bytes_prob"] = prob_bytes
    report["store_bytes_per_sample_epoch"] = prob_bytes / (n * k)
    print(f"  {prob_bytes / 1e9:.2f} GB, {prob_bytes / (n * k):.3f} B per sample per epoch "
          f"({report['store_write_seconds']:.0f} s)", flush=True)

    runs: dict[str, list[dict]] = {"floor": [], "floor-pread": [], "dataprune": []}
    for r in range(args.repeats):
        for name in runs:
            res = run_phase(name, store, args)
            runs[name].append(res)
            print(f"  repeat {r + 1}: {name:12s} {res['seconds']:7.2f} s  peak RSS {res['peak_rss_mb']:7.0f} MB",
                  flush=True)
    report["runs"] = runs

    print(f"official approach at N={n_off} ...", flush=True)
    official = work / "official"
    report["official_samples"] = n_off
    report["official_write"] = write_official(official, store, n_off, k)
    off = [run_phase("official", official, args) for _ in range(min(2, args.repeats))]
    report["official_runs"] = off
    ours_head = np.load(work / "dataprune_scores_head.npy")
    theirs = np.load(official / "official_scores.npy")
    # the official history starts as zeros: for samples unobserved early, its first windows
    # mix in those zeros (a quirk); compare on samples observed in every epoch
    observed = ~np.isnan(np.load(store / "prob.npy", mmap_mode="r")[:k, :n_off]).any(0)
    rel = np.abs(ours_head[observed] - theirs[observed]) / np.maximum(np.abs(theirs[observed]), 1e-12)
    report["official_agreement"] = {"samples_compared": int(observed.sum()),
                                    "max_rel_diff": float(rel.max()), "median_rel_diff": float(np.median(rel))}

    best = {name: min(x["seconds"] for x in v) for name, v in runs.items()}
    med = {name: float(np.median([x["seconds"] for x in v])) for name, v in runs.items()}
    peak = {name: max(x["peak_rss_mb"] for x in v) for name, v in runs.items()}
    off_best = min(x["seconds"] for x in off)
    off_base = min(x["base_rss_mb"] for x in off)
    off_peak = max(x["peak_rss_mb"] for x in off)
    scale = n / n_off
    official_est = {"seconds": off_best * scale,
                    "peak_rss_mb": off_base + (off_peak - off_base) * scale,
                    "text_bytes": report["official_write"]["bytes"] * scale,
                    "text_bytes_per_sample_epoch": report["official_write"]["bytes"] / (n_off * k)}
    summary = {
        "floor_seconds_min": best["floor"], "floor_seconds_median": med["floor"],
        "floor_pread_seconds_min": best["floor-pread"],
        "dataprune_seconds_min": best["dataprune"], "dataprune_seconds_median": med["dataprune"],
        "ratio_vs_floor_min": best["dataprune"] / best["floor"],
        "ratio_vs_floor_median": med["dataprune"] / med["floor"],
        "ratio_vs_floor_pread_min": best["dataprune"] / best["floor-pread"],
        "dataprune_peak_rss_mb": peak["dataprune"], "floor_peak_rss_mb": peak["floor"],
        "official_extrapolated": official_est,
        "speedup_vs_official": official_est["seconds"] / best["dataprune"],
        "targets": {"time <= 3x floor": best["dataprune"] <= 3 * best["floor"],
                    "peak RSS <= 2 GB": peak["dataprune"] <= 2048,
                    "store <= 2 B/sample/epoch/signal": report["store_bytes_per_sample_epoch"] <= 2.0 + 1e-3},
    }
    report["summary"] = summary
    report["load_average_end"] = os.getloadavg()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    stem = f"score_scale_{n}x{k}"
    (results / f"{stem}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    md = render_md(report)
    (results / f"{stem}.md").write_text(md)
    print(md)
    if not args.keep:
        shutil.rmtree(work)


def render_md(r: dict) -> str:
    s, m = r["summary"], r["machine"]
    o = s["official_extrapolated"]
    gb = 1e9
    lines = [
        f"# Dyn-Unc scoring at scale: {r['samples']:,} samples x {r['epochs']} epochs, J={r['window']}",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {m.get('Model name', '?')}, {m.get('CPU(s)', '?')} CPUs (shared with other jobs: "
        f"load average {r['load_average_start'][0]:.1f} at start, {r['load_average_end'][0]:.1f} at end), "
        f"{m.get('MemTotal', '?')} RAM, L2 {m.get('L2 cache', '?')}, L3 {m.get('L3 cache', '?')}; "
        f"Python {m['python']}, NumPy {m['numpy']}, torch {m['torch']}. Store on local disk, warm page "
        "cache (just written). Every measurement runs in its own process, single-threaded; "
        "min over repeats (median in brackets).",
        "",
        "| | time (s) | vs plain NumPy read | peak RSS (MB) | disk |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| plain NumPy pass: memmap chunks -> float32 -> sum (read floor) | {s['floor_seconds_min']:.2f} "
        f"[{s['floor_seconds_median']:.2f}] | 1.00x | {s['floor_peak_rss_mb']:.0f} | "
        f"{r['store_bytes_prob'] / gb:.2f} GB |",
        f"| same read done dataprune's way (preadv + torch cast) -> sum | {s['floor_pread_seconds_min']:.2f} | "
        f"{s['floor_pread_seconds_min'] / s['floor_seconds_min']:.2f}x | | |",
        f"| **dataprune `score('dyn-unc')`** | **{s['dataprune_seconds_min']:.2f}** "
        f"[{s['dataprune_seconds_median']:.2f}] | **{s['ratio_vs_floor_min']:.2f}x** "
        f"[{s['ratio_vs_floor_median']:.2f}x] | **{s['dataprune_peak_rss_mb']:.0f}** | "
        f"{r['store_bytes_prob'] / gb:.2f} GB ({r['store_bytes_per_sample_epoch']:.3f} B/sample/epoch) |",
        f"| official approach (text files, loadtxt, float64 windows), measured at "
        f"N={r['official_samples']:,} and "
        f"extrapolated per sample | {o['seconds']:.0f} | {o['seconds'] / s['floor_seconds_min']:.0f}x | "
        f"{o['peak_rss_mb']:.0f} | {o['text_bytes'] / gb:.1f} GB ({o['text_bytes_per_sample_epoch']:.1f} "
        "B/sample/epoch) |",
        "",
        f"dataprune vs the official approach: {s['speedup_vs_official']:.0f}x faster, "
        f"{o['peak_rss_mb'] / s['dataprune_peak_rss_mb']:.1f}x less peak memory, "
        f"{o['text_bytes'] / r['store_bytes_prob']:.1f}x less disk. Scores agree with the official "
        f"approach on the {r['official_agreement']['samples_compared']:,} samples observed in every "
        f"epoch: max relative difference {r['official_agreement']['max_rel_diff']:.1e}.",
        "",
        "Targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in s["targets"].items()) + ".",
        "",
        f"Synthetic store written in {r['store_write_seconds']:.0f} s; official text files for "
        f"{r['official_samples']:,} samples written in {r['official_write']['write_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
