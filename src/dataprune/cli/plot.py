"""``dataprune plot``: the data map of a run (the paper's Fig. 2), optionally with a keep file's
pruned samples marked."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import DataPruneError
from ..fileio import writing
from ..keepfile import read_keep
from ..store import Dynamics
from .common import command_parser
from .select import add_quiet_arg, check_outputs

#: the signals the data map reads: p(label) per epoch (mean, std) and correctness (colour)
READS = ("prob", "correct")


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "plot", "draw the data map of a run: per sample, mean vs std over epochs of "
                       "the labelled-class probability, coloured by epochs predicted correctly",
                       "dataprune plot runs/fm --keep keep.txt --out fm_datamap.png")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune record` (or a dynamics store)")
    p.add_argument("--keep", metavar="KEEP", help="keep file of `dataprune select` on this run: a second "
                                                  "panel marks the pruned samples (a third zooms in where "
                                                  "they cluster)")
    p.add_argument("--out", metavar="PNG", help="figure to write (.png; default RUN.datamap.png, beside RUN)")
    p.add_argument("--title", default="", help="title of the pruned-samples panel")
    p.add_argument("--force", action="store_true", help="overwrite an existing figure")
    add_quiet_arg(p)
    p.set_defaults(func=run)


def default_out(dyn: Dynamics) -> Path:
    """``RUN.datamap.png`` beside the run folder holding the store (or beside the store)."""
    root = dyn.path.parent if (dyn.path.parent / "config.json").is_file() else dyn.path
    return root.with_name(root.name + ".datamap.png")


def run(args: argparse.Namespace) -> int:
    from ..datamap import pyplot, save_datamap
    dyn = Dynamics.open(args.run)
    if not dyn.history.per_epoch:
        raise DataPruneError(f"the data map needs prob and correct of every epoch; the store {dyn.path} keeps "
                             f"no per-epoch history (keep_history {dyn.history}): score with --keep-history full")
    lacking = [s for s in READS if s not in dyn.signals]
    if lacking:
        raise DataPruneError(f"the data map needs the signal(s) {', '.join(lacking)} of every epoch; the store "
                             f"{dyn.path} has {', '.join(dyn.signals)}; record them with `dataprune record --signals`")
    out = Path(args.out) if args.out else default_out(dyn)
    if out.suffix.lower() != ".png":
        raise DataPruneError(f"--out {out} ends in {out.suffix!r}; expected a .png file")
    check_outputs({"--out": out}, args.force, kind="figures")
    pyplot()  # matplotlib missing: one line naming the extra, before reading the store
    dyn.verify(list(READS))  # the figure shows verified data
    keep = read_keep(args.keep, dyn.num_samples, labels=np.asarray(dyn.labels)) if args.keep else None
    with writing([out]):  # removes the temps a killed earlier write left
        save_datamap(out, dyn, keep, args.title)
    if not args.quiet:
        marked = f", the {dyn.num_samples - len(keep)} pruned by {args.keep} marked" if keep is not None else ""
        print(f"data map of {dyn.num_samples} samples over {dyn.epochs} epochs{marked} -> {out}")
    return 0
