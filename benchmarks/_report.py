"""The one way a benchmark script hands over its markdown report: printed, and written to
``--out`` (replacing it, or appended to it when the results file keeps earlier runs)."""
from __future__ import annotations

from pathlib import Path


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
