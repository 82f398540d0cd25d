"""The one way a benchmark script hands over its markdown report (printed, and written to
``--out``: replacing it, or appended to it when the results file keeps earlier runs) and
says where it came from: the command, the machine, the commit."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
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


def commit(cwd: str | Path | None = None) -> str:
    """The short hash of HEAD of the checkout at ``cwd`` (default: the current directory)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=cwd).stdout.strip()


def provenance(script: str, machine_note: str = "") -> list[str]:
    """A report's header lines: the exact command of ``benchmarks/<script>``, the machine (with
    ``machine_note`` after it), the commit and the date."""
    return [f"command: `python benchmarks/{script} {' '.join(sys.argv[1:])}`",
            f"machine: {machine()}{machine_note}",
            f"commit: {commit()}, date: {time.strftime('%Y-%m-%d %H:%M')}"]
