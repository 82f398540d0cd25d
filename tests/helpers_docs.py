"""Python examples of docs/integrations.md, for tests that run them as written."""
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"


def doc_block(first_line: str) -> str:
    """The one ```python block of docs/integrations.md starting with ``first_line``; the
    docs promise examples of at most 15 lines of code (blank and comment lines aside)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (code,) = [b for b in blocks if b.startswith(first_line)]
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert len(lines) <= 15, f"example {first_line!r} has {len(lines)} lines of code"
    return code
