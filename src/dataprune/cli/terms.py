"""Library errors in command-line terms.

The library's errors name what to change as Python parameters (``force=True``,
``features=FILE.npy``); the command line prints them with the flags that set those
parameters here (``--force``, ``--features FILE.npy``). Only the hints below are rewritten:
a parameter quoted as a value (``record_every=0.3; expected ...``) stays as it is.
"""
from __future__ import annotations

import re
from typing import Callable

#: (library wording, command-line wording), applied in order
TERMS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"\bforce=True\b"), "--force"),
    (re.compile(r"\bpass (features|logits)=FILE\.npy\b"), r"pass --\1 FILE.npy"),
    (re.compile(r"\bRecorder\(signals=\[\.\.\., ([^\]]*)\]\)"),
     lambda m: f"`dataprune score --signals` with {m.group(1).replace(chr(39), '')}"),
    (re.compile(r"\bimport_official needs\b"), "import-official needs"),
    (re.compile(r"\bfile_list=FILE\b"), "--file-list FILE"),
    (re.compile(r"\bnum_classes=C\b"), "--num-classes C"),
    (re.compile(r"\bprune_at(=| >= )(\d+)"), lambda m: f"--prune-at {m.group(2)}" if m.group(1) == "="
     else f"--prune-at >= {m.group(2)}"),
    (re.compile(r"\braise prune_at\b"), "raise --prune-at"),
    (re.compile(r"\b(use|expected) record_every=([\d.]+)"), r"\1 --record-every \2"),
    (re.compile(r"\btry a lower learning rate, or pass nan_policy='omit'"),
     "try a lower learning rate with --lr, or, with dataprune.Recorder in your own loop, pass "
     "nan_policy='omit'"),
)


def cli_terms(message: str) -> str:
    """``message`` (a library error) with its parameter hints as this command line's flags."""
    for pattern, replacement in TERMS:
        message = pattern.sub(replacement, message)
    return message
