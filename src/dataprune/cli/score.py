"""``dataprune score``: train on the full set while recording dynamics."""
from __future__ import annotations

import argparse

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
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to create")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    use_all_cores()
    signals = ALL_SIGNALS + EXTRA_SIGNALS if args.signals == "all" else tuple(s.strip() for s in args.signals.split(","))
    result = score_run(args.out, data_spec(args), model=args.model, cfg=train_config(args),
                       record_view=args.record_view, signals=signals, force=args.force, log=logger(args),
                       progress=not args.quiet)
    print(f"scoring run written to {result.run_dir} ({result.seconds:.0f} s of training)")
    return 0
