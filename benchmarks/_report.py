"""The one way a benchmark script hands over its markdown report (printed, and written to
``--out``: replacing it, or appended to it when the results file keeps earlier runs) and
names the machine it ran on."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def emit(report: str, out: Path | None, *, append: bool = False) -> None:
    """Print ``report``; write it to ``out`` when given (after a blank line when appending)."""
    print(report)
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    if append:
        with out.open("a") as f:
            f.write("\n" + report)
    else:
        out.write_text(report)


def machine() -> str:
    """CPU model, cores, RAM, torch version and this process's torch threads."""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, torch {torch.__version__}, threads {torch.get_num_threads()}"
