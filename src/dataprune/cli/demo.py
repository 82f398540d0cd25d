"""``dataprune demo``: score, prune 25 % with Dyn-Unc, and compare full / Dyn-Unc / random."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


from ..fileio import atomic_write_json, atomic_write_text, refuse_overwrite
from ..keepfile import keep_manifest, write_keep
from ..methods import score
from ..datamap import save_datamap
from ..select import select
from ..store import Dynamics
from ..train.runs import score_run, train_run
from .common import add_data_args, add_output_args, command_parser, data_spec, logger, set_threads
from ..train.loop import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "demo", "end to end on Fashion-MNIST: score, prune with Dyn-Unc, "
                                    "train full / Dyn-Unc / random subsets, print the table",
                       "dataprune demo --out runs/demo")
    add_data_args(p)
    p.add_argument("--model", default="small-cnn", metavar="NAME",
                   help="model of the scoring run and of every comparison run (default small-cnn)")
    p.add_argument("--score-epochs", type=int, default=15, help="epochs K of the scoring run (default 15)")
    p.add_argument("--train-epochs", type=int, default=10, help="epochs of each comparison run (default 10)")
    p.add_argument("--window", type=int, default=5, help="Dyn-Unc window J (default 5)")
    p.add_argument("--prune-ratio", type=float, default=0.25, metavar="R",
                   help="fraction of samples Dyn-Unc and random remove (default 0.25)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every run (initialisation, order, augmentation) and of random (default 0)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads()
    out = Path(args.out)
    refuse_overwrite(out / "results.json", args.force)
    log = logger(args)
    spec = data_spec(args).for_model(args.model)
    data = spec.load()
    n = len(data.train_y)
    say = log or (lambda msg: None)
    say(f"[1/5] scoring run: {args.model}, {args.score_epochs} epochs on {n} samples, recording dynamics")
    result = score_run(out / "score", spec, model=args.model, data=data, force=args.force, log=log,
                       cfg=TrainConfig(epochs=args.score_epochs, seed=args.seed), progress=not args.quiet)
    dyn = Dynamics.open(result.run_dir)
    keep = select(score("dyn-unc", dyn, window=args.window), args.prune_ratio)
    write_keep(out / "keep.txt", keep, keep_manifest("dyn-unc", {"window": args.window}, args.prune_ratio, n,
                                                     dataset=data.name, store_fingerprint=dyn.fingerprint),
               force=args.force)
    say(f"[2/5] Dyn-Unc (J={args.window}) keeps {len(keep)} of {n}; drawing the data map")
    save_datamap(out / "datamap.png", dyn, keep, title=f"Dyn-Unc prunes {n - len(keep)} (x)")
    random_keep = select(score("random", dyn, seed=args.seed), args.prune_ratio)
    rows = []
    for i, (method, subset) in enumerate((("full", None), ("dyn-unc", keep), ("random", random_keep))):
        say(f"[{3 + i}/5] training {args.model} on {method} "
            f"({n if subset is None else len(subset)} samples, {args.train_epochs} epochs)")
        m = train_run(spec, model=args.model, data=data, subset=subset, log=log, progress=not args.quiet,
                      cfg=TrainConfig(epochs=args.train_epochs, seed=args.seed))
        rows.append({"method": method, "kept": m["train_samples"], "test_accuracy": m["test_accuracy"],
                     "train_seconds": m["seconds"]})
    table = format_table(rows)
    atomic_write_json(out / "results.json", {"rows": rows, "score_seconds": result.seconds,
                                             "dataset": data.name, "model": args.model,
                                             "score_epochs": args.score_epochs, "window": args.window,
                                             "train_epochs": args.train_epochs, "prune_ratio": args.prune_ratio,
                                             "seed": args.seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    atomic_write_text(out / "results.md", table)
    print(table, end="")
    print(f"scoring run: {result.run_dir} ({result.seconds:.0f} s)  keep file: {out / 'keep.txt'}  "
          f"data map: {out / 'datamap.png'}")
    return 0


def format_table(rows: list[dict]) -> str:
    """A Markdown table: method, kept samples, test top-1 accuracy, training seconds."""
    lines = ["| method | kept samples | test top-1 (%) | training s |", "| --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['kept']} | {100 * r['test_accuracy']:.2f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"
