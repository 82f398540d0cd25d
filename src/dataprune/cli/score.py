"""``dataprune score``: train on the full set while recording dynamics."""
from __future__ import annotations

import argparse
import os
import sys

from ..record import ALL_SIGNALS, DEFAULT_SIGNALS, EXTRA_SIGNALS
from ..train.loop import VIEWS
from ..train.runs import score_run
from .common import (add_data_args, add_output_args, add_train_args, command_parser, data_spec,
                     logger, train_config, use_all_cores)

DEFAULT_EPOCHS = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "score", "train a model on the full training set while recording dynamics",
                       "dataprune score --dataset fashion-mnist --model small-cnn --epochs 30 --out runs/fm")
    add_data_args(p)
    add_train_args(p, DEFAULT_EPOCHS)
    p.add_argument("--record-view", choices=VIEWS, default="clean",
                   help="clean (default, as the paper's code): extra no-grad eval-mode forward of the "
                        "un-augmented batch; train: the training forward's logits (free)")
    p.add_argument("--signals", default="all",
                   help=f"comma-separated signals to record, or 'all' (default: "
                        f"{','.join(ALL_SIGNALS + EXTRA_SIGNALS)}, what every method needs; "
                        f"Dyn-Unc needs only {','.join(DEFAULT_SIGNALS)})")
    p.add_argument("--keep-history", choices=("full", "none"), default="full",
                   help="full (default): keep every epoch of every signal; none: keep only what Dyn-Unc "
                        "with --window needs (last J+1 epochs of prob + running sums, O(N*J) disk, "
                        "independent of --epochs); such a run scores only dyn-unc with that window")
    p.add_argument("--window", type=int, default=10, help="with --keep-history none: Dyn-Unc window J (default 10)")
    p.add_argument("--nproc", type=int, default=1, metavar="P",
                   help="train data-parallel in P local processes (gloo on CPU, nccl on GPUs); "
                        "`torchrun --nproc-per-node P -m dataprune score ...` does the same")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataPruneError
    from ..train import distributed as ddp
    if args.nproc < 1:
        raise DataPruneError(f"--nproc {args.nproc}; expected at least 1")
    if args.nproc > 1 and ddp.env_world_size() == 1:  # launcher: re-run this command per rank
        argv = list(sys.argv[1:]) if argv_override is None else list(argv_override)
        return ddp.launch(args.nproc, _without_nproc(argv))
    if ddp.env_world_size() == 1:
        use_all_cores()
    if args.signals == "all":
        signals = ("prob",) if args.keep_history == "none" else ALL_SIGNALS + EXTRA_SIGNALS
    else:
        signals = tuple(s.strip() for s in args.signals.split(","))
    result = score_run(args.out, data_spec(args), model=args.model, cfg=train_config(args),
                       record_view=args.record_view, signals=signals, force=args.force, log=logger(args),
                       progress=not args.quiet, keep_history=args.keep_history, window=args.window)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"scoring run written to {result.run_dir} ({result.seconds:.0f} s of training)")
    return 0


#: set by dataprune.cli.main to the argv it parsed (sys.argv when called from the shell)
argv_override: list[str] | None = None


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out
