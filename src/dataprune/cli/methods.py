"""``dataprune methods``: list the scoring methods, one line each."""
from __future__ import annotations

import argparse

from ..methods import get, methods
from .common import command_parser


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "methods", "list the scoring methods (score: higher = keep)", "dataprune methods")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    width = max(map(len, methods()))
    for name in methods():
        m = get(name)
        needs = f"  [needs: {', '.join(m.needs)}]" if m.needs else ""
        print(f"{name:<{width}}  {m.summary}{needs}")
    return 0
