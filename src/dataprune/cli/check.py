"""``dataprune check``: verify a run or store against its fingerprint (one line; exit 2 if not)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..run_outputs import verify_final_outputs
from ..store import Dynamics
from ..train.check import check_run
from .common import command_parser


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "check", "verify a scoring run or dynamics store: content vs fingerprint, "
                       "value ranges, final outputs vs their digests, checkpoint and config; says "
                       "whether the store is finished", "dataprune check runs/fm")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune score`, or a dynamics store")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    line = check_run(args.run)
    path = Path(args.run)
    store = Dynamics.open(path)
    if (path / "config.json").is_file():  # a run: its own line says finished or not
        # runs whose store records "finished" were written with final-output digests
        note = verify_final_outputs(path, required="finished" in store.meta)
        line += f"; {note}" if note else ""
    elif store.finished is False:
        line += (f"; UNFINISHED: {store.epochs} of {store.planned_epochs} planned epochs recorded"
                 + (" (rerun the same `dataprune import-official` to resume it, or with --force to "
                    "start over)" if store.meta.get("imported_from") else ""))
    print(line)
    return 0
