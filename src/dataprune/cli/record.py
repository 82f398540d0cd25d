"""``dataprune record``: train on the full set while recording dynamics (or ``--resume`` a run).

``dataprune record`` is its deprecated alias (same options; a note on stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import DataPruneError
from ..history import HistoryMode
from ..fileio import read_json
from ..record import ALL_SIGNALS, DEFAULT_SIGNALS, EXTRA_SIGNALS
from ..train.loop import VIEWS
from ..train.runs import resume_score_run, score_run
from .common import (add_data_args, add_run_tail, add_train_args, command_parser, data_spec, launch_or_join,
                     logger, refuse_resume_in_ranks, set_threads, train_config)

NAME = "record"
#: the command's former name: still accepted, with a note on stderr (see ``cli.main``)
DEPRECATED_ALIAS = "score"
DEFAULT_EPOCHS = 30

#: The options that change what a scoring run computes: with --resume they come from
#: RUN/config.json, and giving one with another value than the run's is refused. The others
#: (--out, --resume, --threads, --force, --quiet, --verbose, --device, --compile, and
#: --workers: the same store with any count) do not (a test checks that every option is one
#: or the other).
RUN_SETTINGS = ("dataset", "data_dir", "image_size", "limit", "model", "epochs", "batch_size", "lr", "seed",
                "precision", "record_view", "signals", "keep_history", "window", "nproc")
#: Run settings that config.json records under another name than the option's dest
#: (others: config[dest], or config["train"][dest] for the training hyper-parameters).
CONFIG_NAMES = {"nproc": "world_size"}


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, NAME, "train a model on the full training set while recording dynamics",
                       "dataprune record --dataset fashion-mnist --model small-cnn --epochs 30 --out runs/fm\n"
                       "  dataprune record --resume runs/fm      # after a crash: continue from the last epoch",
                       aliases=(DEPRECATED_ALIAS,))
    add_data_args(p)
    add_train_args(p, DEFAULT_EPOCHS)
    p.add_argument("--record-view", choices=VIEWS, default="clean",
                   help="clean (default, as the paper's code): extra no-grad eval-mode forward of the "
                        "un-augmented batch; train: the training forward's logits (free)")
    p.add_argument("--signals", default="all",
                   help=f"comma-separated signals to record, or 'all' (default: "
                        f"{','.join(ALL_SIGNALS + EXTRA_SIGNALS)}, what every method needs; "
                        f"Dyn-Unc needs only {','.join(DEFAULT_SIGNALS)})")
    p.add_argument("--keep-history", choices=("full", "window", "none"), default="full",
                   help="full (default): keep every epoch of every signal; window: keep only what Dyn-Unc "
                        "with --window needs (last J+1 epochs of prob + running sums, O(N*J) disk, "
                        "independent of --epochs); such a run scores only dyn-unc with that window "
                        "(none: the old name of window, deprecated)")
    p.add_argument("--window", type=int, default=10, help="with --keep-history window: Dyn-Unc window J (default 10)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN", help="run directory to create")
    where.add_argument("--resume", metavar="RUN",
                       help="continue the interrupted run RUN from its last finished epoch; dataset, model "
                            "and hyper-parameters come from RUN/config.json (other values are refused)")
    add_run_tail(p, NAME, run, RUN_SETTINGS)


def run(args: argparse.Namespace) -> int:
    from ..train import distributed as ddp
    if args.resume is not None:
        return resume(args)
    for dest, default in args.run_setting_defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    cfg = train_config(args)  # bad settings refused before any process starts or file is written
    launched = launch_or_join(args)
    if launched is not None:
        return launched
    if args.keep_history == "none":
        print("dataprune: --keep-history none is deprecated; use --keep-history window", file=sys.stderr)
    keep_history = HistoryMode.parse(args.keep_history, "--keep-history")
    signals = resolve_signals(args.signals, keep_history)
    result = score_run(args.out, data_spec(args), model=args.model, cfg=cfg,
                       record_view=args.record_view, signals=signals, force=args.force, log=logger(args),
                       progress=not args.quiet, keep_history=keep_history, window=args.window,
                       device=args.device, compile=args.compile)
    if ddp.env_rank() == 0:
        print(f"scoring run written to {result.run_dir} ({result.seconds:.0f} s of training)")
    return 0


def resume(args: argparse.Namespace) -> int:
    run_dir = Path(args.resume)
    refuse_resume_in_ranks(NAME)
    if args.force:
        raise DataPruneError("--force cannot be combined with --resume (resuming overwrites nothing); "
                             f"to start over use `dataprune record --out {run_dir} --force`")
    config = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    conflicts = [f"--{dest.replace('_', '-')} {given}" + (f" (the run has {used})" if used is not None else "")
                 for dest, given, used in _given_settings(args, config) if given != used]
    if conflicts:
        raise DataPruneError(f"--resume takes the run's settings from {run_dir / 'config.json'}; drop "
                             f"{', '.join(conflicts)}, or start a new run with --out")
    set_threads(args.threads if args.threads is not None else config.get("threads"))
    result = resume_score_run(run_dir, log=logger(args), progress=not args.quiet,
                              workers=args.workers or None, device=args.device, compile=args.compile)
    epochs = result.history[-1]["epoch"] + 1 if result.history else 0
    print(f"scoring run written to {result.run_dir} (resumed after epoch {result.resumed_from} of {epochs}; "
          f"{result.seconds:.0f} s of training in all)")
    return 0


def _given_settings(args: argparse.Namespace, config: dict[str, Any]):
    """(dest, given value, value in config) for every run setting given on the command line."""
    for dest in args.run_setting_defaults:
        given = getattr(args, dest)
        if given is None:
            continue
        key = CONFIG_NAMES.get(dest, dest)
        train = config.get("train") if isinstance(config.get("train"), dict) else {}
        used = config[key] if key in config else train.get(key)
        if dest == "data_dir" and used is not None:
            given, used = str(Path(given).resolve()), str(Path(used).resolve())
        if dest == "keep_history" and used is not None:  # config.json holds the stored spelling
            given, used = str(HistoryMode.parse(given, "--keep-history")), str(HistoryMode.from_stored(used))
        if dest == "signals":
            given = list(resolve_signals(given, HistoryMode.from_stored(config.get("keep_history", "full"))))
        yield dest, given, used


def resolve_signals(text: str, keep_history: HistoryMode) -> tuple[str, ...]:
    """``--signals``: 'all' = what every method needs (only ``prob`` with --keep-history window)."""
    if text == "all":
        return keep_history.kept_signals or ALL_SIGNALS + EXTRA_SIGNALS
    return tuple(s.strip() for s in text.split(","))
