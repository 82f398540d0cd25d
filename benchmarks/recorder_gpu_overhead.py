"""Recorder overhead per training step on a GPU (issue 16, item 4; target <= 1 % of a step).

A torchvision model (random init, nothing downloaded) in ``channels_last``, bf16 autocast,
SGD, trained on one synthetic batch with random labels; each step's ``(indices, logits,
labels)`` go to ``dataprune.Recorder.update`` in the blocks "with" and not in the blocks
"without". Blocks alternate (without/with, then with/without, ...) after warm-up steps, so
drift cancels; each block is timed with CUDA events after a ``torch.cuda.synchronize()``
(``time.perf_counter`` on CPU). ``end_epoch`` runs once after each "with" block, timed on its
own (it runs once per epoch: ceil(N / B) steps) and added to the step amortised over an epoch.

    python benchmarks/recorder_gpu_overhead.py          # resnet50, 224 px, B 256, N = 1,281,167, C = 1000
    python benchmarks/recorder_gpu_overhead.py --device cpu --arch resnet18 --image-size 64 \\
        --batch-size 8 --steps 3 --warmup 1 --repeats 2 --num-samples 1000     # seconds, on CPU

Prints per-block times, then the medians and two ratios: measured (median over repeats of
with / without, + end_epoch amortised) and direct (1 + the Recorder's own time per step: its
updates timed alone, back to back, + end_epoch amortised, / the step without it). Exit
status 0 when the measured ratio meets --target, 3 when it does not, anything else on an error.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision

from dataprune import Recorder
from dataprune.record import DEFAULT_SIGNALS

MISSED = 3  # exit status: measured, target not met


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}; expected an integer >= 1")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--arch", default="resnet50", help="a torchvision.models builder (default resnet50)")
    ap.add_argument("--image-size", type=positive, default=224)
    ap.add_argument("--batch-size", type=positive, default=256)
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--steps", type=positive, default=30, help="timed steps per block (default 30)")
    ap.add_argument("--warmup", type=positive, default=10, help="untimed steps first, with and without (default 10)")
    ap.add_argument("--repeats", type=positive, default=5, help="pairs of blocks with / without (default 5)")
    ap.add_argument("--num-samples", type=positive, default=1_281_167, help="N (default: ImageNet-1K's train set)")
    ap.add_argument("--num-classes", type=positive, default=1000)
    ap.add_argument("--signals", default=",".join(DEFAULT_SIGNALS),
                    help=f"comma-separated Recorder signals (default {','.join(DEFAULT_SIGNALS)})")
    ap.add_argument("--target", type=float, default=1.01, help="largest acceptable measured ratio (default 1.01)")
    return ap.parse_args(argv)


def block_timer(device: torch.device) -> Callable[[Callable[[], None]], float]:
    """A function that runs ``work()`` and returns its seconds: CUDA events on the current
    stream after a synchronize on CUDA (the GPU's time, host stalls included), wall clock on CPU."""
    def cuda(work: Callable[[], None]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        work()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def cpu(work: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        work()
        return time.perf_counter() - t0
    return cuda if device.type == "cuda" else cpu


def synced_seconds(device: torch.device, work: Callable[[], object]) -> float:
    """Wall seconds of ``work()`` between two synchronizes (host copies and disk writes included)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("recorder_gpu_overhead.py: --device cuda but torch sees no CUDA device; use --device cpu")
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its kernels once
    torch.manual_seed(0)
    b, n, c = args.batch_size, args.num_samples, args.num_classes
    model = getattr(torchvision.models, args.arch)(num_classes=c)
    model = model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # low lr: random labels, no divergence
    x = torch.randn(b, 3, args.image_size, args.image_size, device=device).contiguous(
        memory_format=torch.channels_last)
    steps = max(args.steps, args.warmup)
    labels = torch.randint(0, c, (steps, b), device=device)
    indices = torch.randint(0, n, (steps, b), device=device)
    store = tempfile.TemporaryDirectory(prefix="recorder_gpu_overhead_")
    rec = Recorder(n, Path(store.name) / "dyn", c, signals=args.signals.split(","),
                   epochs=args.repeats + 1, view="train")

    def train(count: int, record: bool) -> torch.Tensor:
        """``count`` training steps (each recorded when ``record``); the last step's logits (B, C)."""
        for i in range(count):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                logits = model(x)
                loss = F.cross_entropy(logits, labels[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if record:
                rec.update(indices[i], logits, labels[i])
        return logits.detach()

    timed = block_timer(device)
    train(args.warmup, record=False)
    logits = train(args.warmup, record=True)  # allocates the Recorder's table
    rec.end_epoch()  # creates the store's files
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"recorder overhead: torchvision {args.arch}, {args.image_size} px, {args.precision}, channels_last, "
          f"SGD, batch {b}, N={n}, C={c}, signals {args.signals}, on {gpu}, torch {torch.__version__}", flush=True)
    per_step: dict[bool, list[float]] = {False: [], True: []}
    end_epoch_s: list[float] = []
    for r in range(args.repeats):
        for record in (False, True) if r % 2 == 0 else (True, False):
            per_step[record].append(timed(lambda: train(args.steps, record)) / args.steps)
            if record:
                end_epoch_s.append(synced_seconds(device, rec.end_epoch))
        print(f"repeat {r}: without {per_step[False][-1] * 1e3:.3f} ms/step, with {per_step[True][-1] * 1e3:.3f} "
              f"ms/step, end_epoch {end_epoch_s[-1] * 1e3:.1f} ms", flush=True)
    # the Recorder's own time: its updates alone, back to back, on one step's logits
    update_s = timed(lambda: [rec.update(indices[i], logits, labels[i]) for i in range(args.steps)]) / args.steps
    rec.close()
    store.cleanup()

    without, with_ = statistics.median(per_step[False]), statistics.median(per_step[True])
    epoch_steps = math.ceil(n / b)
    end_epoch_step = statistics.median(end_epoch_s) / epoch_steps
    measured = statistics.median([w / wo for w, wo in zip(per_step[True], per_step[False])]) + end_epoch_step / without
    direct = 1 + (update_s + end_epoch_step) / without
    verdict = "PASS" if measured <= args.target else "FAIL"
    print(f"step without recorder: {without * 1e3:.3f} ms (median of {args.repeats} blocks of {args.steps} steps)")
    print(f"step with recorder:    {with_ * 1e3:.3f} ms")
    print(f"update alone: {update_s * 1e3:.3f} ms/call; end_epoch: {statistics.median(end_epoch_s) * 1e3:.1f} ms "
          f"= {end_epoch_step * 1e3:.4f} ms/step over {epoch_steps} steps/epoch")
    print(f"ratio {measured:.4f} direct {direct:.4f} target {args.target:g} {verdict}")
    return 0 if verdict == "PASS" else MISSED


if __name__ == "__main__":
    sys.exit(main())
