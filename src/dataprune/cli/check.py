"""``dataprune check``: verify a run or store against its fingerprint (one line; exit 2 if not)."""
from __future__ import annotations

import argparse

from ..train.check import check_run
from .common import command_parser


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "check", "verify a scoring run or dynamics store: content vs fingerprint, "
                       "value ranges, checkpoint and config", "dataprune check runs/fm")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune score` or `train`, or a dynamics store")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(check_run(args.run))
    return 0
