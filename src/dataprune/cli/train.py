"""``dataprune train``: train on a keep file's subset (or everything) and test."""
from __future__ import annotations

import argparse

from ..fileio import atomic_write_json, check_writable, refuse_overwrite
from ..keepfile import read_keep
from ..train.runs import train_run
from .common import (add_data_args, add_output_args, add_train_args, command_parser, data_spec,
                     logger, set_threads, train_config)

DEFAULT_EPOCHS = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "train", "train a model on a subset (or the full set) and report test accuracy",
                       "dataprune train --dataset fashion-mnist --model small-cnn --epochs 20 "
                       "--subset keep.txt --seed 1 --metrics-out m.json")
    add_data_args(p)
    add_train_args(p, DEFAULT_EPOCHS)
    p.add_argument("--subset", metavar="KEEP", help="keep file (.txt or .npy) of sample indices to train on")
    p.add_argument("--metrics-out", metavar="JSON", help="write test_accuracy, train_samples, epochs, seconds here")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads()
    if args.metrics_out:
        refuse_overwrite(args.metrics_out, args.force)
        check_writable(args.metrics_out)  # fail now, not after training
    spec = data_spec(args).for_model(args.model)
    data = spec.load()
    subset = (read_keep(args.subset, len(data.train_y), dataset=data.name, labels=data.train_y.numpy(),
                        data_dir=data.data_dir) if args.subset else None)
    metrics = train_run(spec, model=args.model, cfg=train_config(args), subset=subset,
                        log=logger(args), data=data, progress=not args.quiet)
    metrics["subset"] = args.subset
    if args.metrics_out:
        atomic_write_json(args.metrics_out, metrics)
    print(f"{metrics['eval_split']} accuracy {100 * metrics['test_accuracy']:.2f} % (top-1) after {metrics['epochs']} epochs on "
          f"{metrics['train_samples']} samples ({metrics['seconds']:.0f} s)")
    return 0
