"""``dataprune check``: verify a run or store against its fingerprint (one line; exit 2 if not)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import DataPruneError
from ..fileio import read_json
from ..keepfile import read_keep
from ..run_outputs import verify_final_outputs
from ..store import Dynamics
from ..train.check import check_run
from ..train.one_run import KEEP_FILE
from .common import command_parser
from .select import add_quiet_arg

METRICS_FILE = "metrics.json"


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "check", "verify a scoring run or dynamics store (content vs fingerprint, value "
                       "ranges, final outputs vs their digests, checkpoint and config; says whether the store "
                       "is finished), or a `dataprune train` run folder (its store, keep file and metrics)",
                       "dataprune check runs/fm")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune score` or of `dataprune train "
                                              "--prune-at/--dynamic`, or a dynamics store")
    add_quiet_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.run)
    config = read_json(path / "config.json") if (path / "config.json").is_file() else None
    is_train = isinstance(config, dict) and config.get("command") == "train"
    summary = check_train_run(path, config) if is_train else check_score_run(path)
    if not args.quiet:
        print(summary)
    return 0


def check_score_run(path: Path) -> str:
    """Verify a scoring run or a bare store: content, final outputs vs their digests, and
    whether the store is finished."""
    line = check_run(path)
    store = Dynamics.open(path)
    if (path / "config.json").is_file():  # a run: its own line says finished or not
        # runs whose store records "finished" were written with final-output digests
        note = verify_final_outputs(path, required="finished" in store.meta)
        line += f"; {note}" if note else ""
    elif store.finished is False:
        line += (f"; UNFINISHED: {store.epochs} of {store.planned_epochs} planned epochs recorded"
                 + (" (rerun the same `dataprune import-official` to resume it, or with --force to "
                    "start over)" if store.meta.get("imported_from") else ""))
    return line


def check_train_run(path: Path, config: dict) -> str:
    """Verify a ``dataprune train`` run folder: its dynamics store (as ``check`` does a store),
    its keep file against its manifest and N, and once finished its ``metrics.json``. Its
    checkpoint (``state.pt``) is not verified; the summary says so."""
    checked = []
    if (path / "dynamics").is_dir():
        checked.append(check_run(path / "dynamics").removeprefix("OK: "))
    n = config.get("num_samples")
    keep_file = path / KEEP_FILE
    if keep_file.exists():
        keep = read_keep(keep_file, n if isinstance(n, int) else None)
        checked.append(f"keep file {KEEP_FILE} ({len(keep)} of {n} samples, as its manifest says)")
    elif config.get("finished") and (config.get("plan") or {}).get("prune_at") is not None:
        raise DataPruneError(f"{path} is a finished --prune-at run but has no {KEEP_FILE}")
    if config.get("finished"):
        metrics = read_json(path / METRICS_FILE)
        acc = metrics.get("test_accuracy") if isinstance(metrics, dict) else None
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 1 or math.isnan(acc):
            raise DataPruneError(f"{path / METRICS_FILE} has test_accuracy={acc!r}; expected a fraction in [0, 1]")
        checked.append(f"{METRICS_FILE} (test accuracy {100 * acc:.2f} %)")
        state = "finished"
    else:
        state = f"unfinished: `dataprune train --resume {path}`"
    return (f"OK: train run {path} ({state}); checked {'; '.join(checked) or 'nothing else'}; "
            "not checked: its checkpoint")
