"""Recorder.update cost vs N: median time of one update (default signals) over the time of
the softmax + gather it records, for the same batch, at several training-set sizes N.
Synthetic logits; the old update (a reference copy, below) runs in the same process,
steps interleaved, so drift and contention hit both alike.

    python benchmarks/recorder_update_scale.py [--sizes 60000,1000000,14200000] [--out FILE]

Two kinds of logits: ``random`` (standard normal, random labels: the model is almost always
wrong) and ``trained`` (normal with standard deviation 2, the labelled class raised by 10 in
80 % of rows: 75 % of rows right, median labelled-class probability 0.63, a spread of ~16
units; a fifth of the rows are right with probability < 1/2, the rows where Recorder's
``correct`` needs its index search).

Target: new update / (softmax + gather) <= 3 at every N. Times are medians over steps of the
thread's CPU time (``time.thread_time``: on a contended CPU, time other jobs hold the core is
not counted; a ~1 ms update is preempted more often than its ~0.2 ms baseline) and of wall
time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dataprune.record as record
from _report import emit, provenance  # benchmarks/_report.py (the script's folder is on sys.path)


class OldRecorder(record.Recorder):
    """Reference copy of Recorder.update before O(batch) recording (commit f297494), default
    signals only: an (N+1,) scatter per step for the in-batch dedupe (O(N)), isfinite over
    the whole (B, C) logits, argmax."""

    def update(self, indices, logits, targets, *, features=None):
        logits = logits.detach()
        device = logits.device
        indices = torch.as_tensor(indices, device=device)
        targets = torch.as_tensor(targets, device=device)
        if self._table is None:
            self._allocate(device)
        buf = self._table.columns
        indices, targets = indices.to(device, torch.int64), targets.to(device, torch.int64)
        logits = logits.to(device, torch.float32)
        n = self.num_samples
        idx_ok = (indices >= 0) & (indices < n)
        y_ok = (targets >= 0) & (targets < self.num_classes)
        finite = torch.isfinite(logits).all(1)
        bad = torch.stack([~idx_ok.all(), ~y_ok.all(), ~finite.all()])
        self._raise_if_bad(bad, indices, targets)
        keep = idx_ok & y_ok & finite
        y = torch.where(y_ok, targets, 0)
        pos = torch.arange(len(indices), device=indices.device)
        safe = torch.where(keep, indices, n)
        last = torch.full((n + 1,), -1, dtype=torch.int64, device=indices.device)
        last.scatter_reduce_(0, safe, pos, reduce="amax")
        dest = torch.where(keep & (last[safe] == pos), safe, n)
        p = torch.softmax(torch.where(finite[:, None], logits, 0.0), 1)
        old = {"prob": lambda: p.gather(1, y[:, None])[:, 0],
               "correct": lambda: (logits.argmax(1) == y).to(torch.float32)}
        for s in self.signals:
            buf[s][dest] = old[s]()
        buf["labels"][dest] = y.to(buf["labels"].dtype)


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread) that ``fn()`` takes."""
    w, c = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w, time.thread_time() - c


def make_batches(kind: str, n: int, b: int, c: int, count: int = 8) -> list[tuple[torch.Tensor, ...]]:
    """``count`` batches (indices (B,), logits (B, C), targets (B,)) of the ``kind`` above."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        idx, y = torch.randint(0, n, (b,), generator=g), torch.randint(0, c, (b,), generator=g)
        logits = torch.randn(b, c, generator=g)
        if kind == "trained":
            logits *= 2
            right = torch.rand(b, generator=g) < 0.8
            logits[right, y[right]] += 10
        out.append((idx, logits, y))
    return out


def measure(n: int, b: int, c: int, steps: int, tmp: Path, kind: str) -> dict[str, float]:
    """Median seconds per step at N=n: the new and the old update, each interleaved step by
    step with its own baseline (softmax + gather of the same batch). The two recorders run
    one after the other, so the old one's (N+1,) allocations do not evict the new one's
    working set."""
    batches = make_batches(kind, n, b, c)
    out, values = {}, {}
    for cls, label in ((record.Recorder, "new"), (OldRecorder, "old")):
        rec = cls(n, tmp / f"{kind}-{cls.__name__}-{n}", c, epochs=1)
        times = {(k, clock): [] for k in ("base", "update") for clock in ("cpu", "wall")}
        for step in range(steps + 4):  # the first steps (buffer allocation, warm-up) are dropped
            idx, logits, y = batches[step % len(batches)]
            base = timed(lambda: torch.softmax(logits, 1).gather(1, y[:, None]))
            update = timed(lambda: rec.update(idx, logits, y))
            if step >= 4:
                for k, t in (("base", base), ("update", update)):
                    times[k, "wall"].append(t[0])
                    times[k, "cpu"].append(t[1])
        for clock in ("cpu", "wall"):
            out[f"{label} base {clock}"] = statistics.median(times["base", clock])
            out[f"{label} {clock}"] = statistics.median(times["update", clock])
        values[cls.__name__] = rec.epoch_values()
        rec.close()
    new, old = values["Recorder"], values["OldRecorder"]
    for k in new:  # same batches, same values: prob within float32 rounding, the rest exact
        if k == "prob":
            np.testing.assert_allclose(new[k], old[k], rtol=1e-6, atol=1e-30, err_msg="prob")
        else:
            assert new[k].tobytes() == old[k].tobytes(), f"new and old differ in {k!r}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="60000,1000000,14200000")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--logits", default="random,trained", help="kinds of logits, comma-separated")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.logits.split(","):
            for n in (int(s) for s in args.sizes.split(",")):
                m = measure(n, args.batch, args.classes, args.steps, Path(tmp), kind)
                for stat in ("cpu", "wall"):
                    nb, nu, ob, ou = (m[f"{k} {stat}"] for k in ("new base", "new", "old base", "old"))
                    rows.append(f"| {kind} | {n:,} | {stat} | {nb * 1e3:.3f} | {nu * 1e3:.3f} "
                                f"| **{nu / nb:.2f}** | {ob * 1e3:.3f} | {ou * 1e3:.3f} | {ou / ob:.2f} |")
                print(*rows[-2:], sep="\n", flush=True)
    report = "\n".join([
        "## Recorder.update cost vs N (O(batch) recording)",
        "",
        *provenance("recorder_update_scale.py", "; shared with other jobs: load average "
                    f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min) at the end of the run"),
        f"workload: synthetic logits ({args.logits}; see the script's docstring), "
        f"B={args.batch}, C={args.classes}, signals prob+correct, "
        f"median over {args.steps} steps of the thread's CPU time (not counting time other jobs "
        "hold the core) and of wall time; each update interleaved step by step with its baseline "
        "(softmax + gather of the same batch); new then old in one process",
        "",
        "| logits | N | median | base ms | new update ms | new / base | base ms | old update ms | old / base |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "target: new / base <= 3 at every N",
        "",
    ])
    emit(report, args.out, append=True)


if __name__ == "__main__":
    main()
