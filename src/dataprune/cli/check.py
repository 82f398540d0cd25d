"""``dataprune check``: verify a run or store against its fingerprint (one line; exit 2 if not)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..run_outputs import verify_final_outputs
from ..store import Dynamics
from ..train.check import check_run
from ..train.rundir import run_command
from .common import command_parser
from .select import add_quiet_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "check", "verify a scoring run or dynamics store (content vs fingerprint, value "
                       "ranges, final outputs vs their digests, checkpoint and config; says whether the store "
                       "is finished), or a `dataprune train` run folder (config, state, store, keep file and "
                       "metrics)", "dataprune check runs/fm")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune record` or of `dataprune train "
                                              "--prune-at/--dynamic/--budget`, or a dynamics store")
    add_quiet_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.run)
    summary = check_run(path)
    is_run = (path / "config.json").is_file()
    if not (is_run and run_command(path) == "train"):
        summary += _store_notes(path, is_run)
    if not args.quiet:
        print(summary)
    return 0


def _store_notes(path: Path, is_run: bool) -> str:
    """A scoring run's final outputs vs their digests, or a bare store's unfinished state."""
    store = Dynamics.open(path)
    if is_run:  # a run: its own line says finished or not
        # runs whose store records "finished" were written with final-output digests
        note = verify_final_outputs(path, required="finished" in store.meta)
        return f"; {note}" if note else ""
    if store.finished is False:
        return (f"; UNFINISHED: {store.epochs} of {store.planned_epochs} planned epochs recorded"
                + (" (rerun the same `dataprune import-official` to resume it, or with --force to "
                   "start over)" if store.meta.get("imported_from") else ""))
    return ""
