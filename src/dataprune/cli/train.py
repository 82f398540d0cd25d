"""``dataprune train``: train on a keep file's subset (or everything) and test; or prune
inside the run (``--prune-at T``, ``--dynamic infobatch``), resumable with ``--resume``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DataPruneError
from ..fileio import atomic_write_json, check_writable, refuse_overwrite
from ..keepfile import read_keep
from ..train.one_run import resume_run, start_run
from ..train.plan import DYNAMICS, PrunePlan
from ..train.rundir import RunConfig, RunDir, inside_run
from ..train.runs import train_run
from .common import (add_data_args, add_run_tail, add_train_args, command_parser, data_args_from_keep,
                     data_spec, launch_or_join, logger, refuse_resume_in_ranks, set_threads, train_config)

DEFAULT_EPOCHS = 20
#: ``--prune-at`` without a value (T = this fraction of --epochs, at least 1), its method, the
#: cost its ratio is chosen for and the two-sided rule: the recipe that beat the matched-compute
#: baseline in every regime measured (benchmarks/results/recipe_search.md, docs/one-run.md).
DEFAULT_PRUNE_AT_FRACTION = 1 / 3
DEFAULT_METHOD = "el2n"
DEFAULT_COST = 0.75


def _prune_at(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--prune-at {text!r}: expected an epoch count T or 'auto'") from None


#: run settings of a train run, and where its config.json holds each: with --resume a given
#: value that differs from the run's is refused (as `record --resume` does)
RUN_SETTINGS: dict[str, Callable[[RunConfig], Any]] = {
    "dataset": lambda c: c.dataset, "data_dir": lambda c: c.data_dir, "limit": lambda c: c.limit,
    "image_size": lambda c: c.image_size, "model": lambda c: c.model,
    "epochs": lambda c: c.train.epochs, "batch_size": lambda c: c.train.batch_size, "lr": lambda c: c.train.lr,
    "seed": lambda c: c.train.seed, "budget": lambda c: c.budget,
    **{k: (lambda c, k=k: getattr(c.plan, k) if c.plan else None)
       for k in ("prune_at", "method", "prune_ratio", "record_every", "dynamic", "infobatch_ratio",
                 "infobatch_delta")},
    "window": lambda c: c.plan.params.get("window") if c.plan else None, "nproc": lambda c: c.world_size,
    "drop_mislabeled": lambda c: c.plan.mislabeled if c.plan else None}


def default_prune_at(epochs: int) -> int:
    """T for ``--prune-at`` without a value: round(E / 3), at least 1 (3 of 10, 5 of 15)."""
    return max(1, round(DEFAULT_PRUNE_AT_FRACTION * epochs))


def ratio_for_cost(cost: float, prune_at: int, epochs: int) -> float:
    """The ratio R that makes pruning at T cost ``cost`` of the full run's sample passes:
    T/E + (1 - T/E)(1 - R) = cost, so R = (1 - cost) / (1 - T/E) (E=10, T=3: 0.357)."""
    if not 0 < cost <= 1:  # nan too
        raise DataPruneError(f"--cost {cost}; expected a fraction 0 < C <= 1 of the full run's sample passes")
    ratio = (1 - cost) / (1 - prune_at / epochs)
    if not 0 < ratio < 1:
        raise DataPruneError(f"--cost {cost} with --prune-at {prune_at} of --epochs {epochs} needs a prune ratio of "
                             f"{ratio:.3g}; expected a cost above {prune_at / epochs:.3g} (the T epochs on all data) "
                             "and below 1")
    return ratio


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "train", "train a model on a subset (or the full set) and report test accuracy; "
                                     "or prune inside this one run (--prune-at, --dynamic infobatch)",
                       "dataprune train --dataset fashion-mnist --model small-cnn --epochs 10 --prune-at 3 "
                       "--method el2n --prune-ratio 0.3 --seed 0 --metrics-out m.json")
    add_data_args(p)
    add_train_args(p, DEFAULT_EPOCHS)
    p.add_argument("--subset", metavar="KEEP", help="keep file (.txt or .npy) of sample indices to train on")
    p.add_argument("--metrics-out", metavar="JSON",
                   help="write test_accuracy, train_samples, epochs, seconds, sample_passes, full_equivalent "
                        "(and keep_file for pruned runs) here")
    p.add_argument("--prune-at", type=_prune_at, nargs="?", const="auto", metavar="T",
                   help=f"train T epochs on the full set while recording (train view), score, keep the "
                        f"best 1-R and train the remaining epochs on them, in this run (no value or auto: "
                        f"T = round({DEFAULT_PRUNE_AT_FRACTION} x --epochs); 0 = prune before training, for "
                        f"methods that read no signal)")
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help=f"scoring method of --prune-at (default {DEFAULT_METHOD}; `dataprune methods`)")
    p.add_argument("--prune-ratio", type=float, metavar="R",
                   help="fraction removed at --prune-at (default: the R that makes the run cost --cost)")
    p.add_argument("--cost", type=float, metavar="C",
                   help=f"with --prune-at and no --prune-ratio: the share of the full run's sample passes to "
                        f"spend, R = (1 - C) / (1 - T/E) (default {DEFAULT_COST})")
    p.add_argument("--drop-mislabeled", choices=("auto", "off"), default="auto",
                   help="auto (default): estimate the label-noise rate from the T epochs (share of samples "
                        "whose mean p(label) is below 1/C) and, when it is 10 %% or more, drop that many likely "
                        "mislabeled samples before the easiest (two-sided); off: one-sided")
    p.add_argument("--window", type=int, metavar="J",
                   help="the method's window (default min(10, recordings - 1)); must fit the T epochs")
    p.add_argument("--record-every", type=float, default=1.0, metavar="F",
                   help="end a recording every F of an epoch (1, 0.5, 0.25...; default 1): more, finer "
                        "recordings of the T epochs (in the train view each sample is still seen once an epoch)")
    p.add_argument("--budget", type=float, metavar="B",
                   help="the matched-compute baseline: all data, no pruning, for round(B x the full run's "
                        "optimizer steps) steps (0 < B <= 1) with the warm-up + cosine schedule compressed into "
                        "them (the last epoch may be partial); needs --out or --metrics-out, resumable")
    p.add_argument("--dynamic", choices=DYNAMICS, help="dynamic pruning instead: infobatch (Qin et al. 2024)")
    p.add_argument("--infobatch-ratio", type=float, default=0.5, metavar="P",
                   help="infobatch: drop probability of below-mean-loss samples (default 0.5)")
    p.add_argument("--infobatch-delta", type=float, default=0.875, metavar="D",
                   help="infobatch: prune in the first floor(D*E) epochs, full set after (default 0.875)")
    p.add_argument("--out", metavar="DIR",
                   help="run folder of --prune-at / --dynamic (keep file, dynamics, checkpoints); default "
                        "the --metrics-out path without .json, plus .run")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the interrupted --prune-at/--dynamic/--budget run in DIR; its settings come "
                        "from DIR/config.json (other values are refused)")
    add_run_tail(p, "train", run, RUN_SETTINGS)


def _run_dir(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    if not args.metrics_out:
        raise DataPruneError("--prune-at/--dynamic/--budget need a run folder; pass --out DIR or --metrics-out JSON")
    m = Path(args.metrics_out)
    return m.with_name((m.stem if m.suffix == ".json" else m.name) + ".run")


def run(args: argparse.Namespace) -> int:
    from ..train import distributed as ddp
    if not args.resume:
        for dest, default in args.run_setting_defaults.items():
            if getattr(args, dest) is None:
                setattr(args, dest, default)
        train_config(args)  # bad settings refused before anything is written
        check_options(args)
    if args.metrics_out:
        within = inside_run(args.metrics_out)
        if within is not None:  # --force must never let it replace a run's or a store's file
            raise DataPruneError(f"--metrics-out {args.metrics_out} lies inside the dataprune run or store "
                                 f"{within}; write the metrics elsewhere")
        refuse_overwrite(args.metrics_out, args.force)
        check_writable(args.metrics_out)  # fail now, not after training
    if not args.resume:
        launched = launch_or_join(args)
        if launched is not None:
            return launched
    metrics = resume(args) if args.resume else start(args)
    if ddp.env_rank() != 0:  # rank 0 writes and reports
        return 0
    if args.metrics_out:
        atomic_write_json(args.metrics_out, metrics)
    pruned = f", keep file {metrics['keep_file']}" if metrics.get("keep_file") else ""
    length = (f"{metrics['optimizer_steps']} optimizer steps (budget {metrics['budget']} of {metrics['epochs']} "
              f"epochs) on all {metrics['num_samples']} samples" if metrics.get("budget") is not None else
              f"{metrics['epochs']} epochs on {metrics['train_samples']} samples (last epoch)")
    print(f"{metrics.get('eval_split', 'test')} accuracy {100 * metrics['test_accuracy']:.2f} % (top-1) after "
          f"{length}, {metrics['full_equivalent']:.3f} of full training's "
          f"sample passes ({metrics['seconds']:.0f} s){pruned}")
    return 0


def check_options(args: argparse.Namespace) -> None:
    """Refuse contradictory options of a new run (before any process starts or file is written)."""
    one_run = args.prune_at is not None or args.dynamic is not None or args.budget is not None
    if args.prune_at == "auto":
        args.prune_at = default_prune_at(args.epochs)
    if one_run and args.subset:
        raise DataPruneError("--subset excludes --prune-at/--dynamic/--budget; expected one of them")
    if args.budget is not None:
        if not (0 < args.budget <= 1):  # nan and inf too
            raise DataPruneError(f"--budget {args.budget}; expected a fraction 0 < B <= 1 of the full run's "
                                 "optimizer steps")
        if args.prune_at is not None or args.dynamic is not None:
            raise DataPruneError("--budget excludes --prune-at/--dynamic (it trains on all data, unpruned); "
                                 "expected one of them")
    if args.out and not one_run:
        raise DataPruneError("--out is the run folder of --prune-at/--dynamic/--budget; a plain train writes "
                             "--metrics-out only")
    if args.nproc > 1 and args.dynamic is not None:
        raise DataPruneError(f"--nproc {args.nproc}: --dynamic {args.dynamic} trains in one process only; drop "
                             "--nproc")
    if args.cost is not None and (args.prune_at is None or args.prune_ratio is not None):
        raise DataPruneError("--cost chooses the ratio of --prune-at; expected --prune-at without --prune-ratio")
    if args.prune_at is not None and args.prune_ratio is None and 0 <= args.prune_at < args.epochs:
        args.prune_ratio = ratio_for_cost(DEFAULT_COST if args.cost is None else args.cost, args.prune_at,
                                          args.epochs)
        log = logger(args)
        if log:
            log(f"--prune-at {args.prune_at} of {args.epochs} epochs: prune ratio {args.prune_ratio:.3f}, for a "
                f"cost of {DEFAULT_COST if args.cost is None else args.cost} of the full run")
    if one_run:
        plan(args).resolved(args.epochs, args.seed)  # bad input fails before the data loads
        _run_dir(args)


def plan(args: argparse.Namespace) -> PrunePlan:
    """The pruning plan the options describe."""
    return PrunePlan(prune_at=args.prune_at, method=args.method if args.prune_at is not None else None,
                     prune_ratio=args.prune_ratio or 0.0, record_every=args.record_every,
                     mislabeled=args.drop_mislabeled if args.prune_at else "off",  # T = 0: no evidence
                     params={} if args.window is None else {"window": args.window}, dynamic=args.dynamic,
                     infobatch_ratio=args.infobatch_ratio, infobatch_delta=args.infobatch_delta)


def start(args: argparse.Namespace) -> dict[str, Any]:
    if args.prune_at is not None or args.dynamic is not None or args.budget is not None:
        return start_run(_run_dir(args), data_spec(args).for_model(args.model), model=args.model,
                         cfg=train_config(args), plan=plan(args), budget=args.budget, force=args.force,
                         log=logger(args), progress=not args.quiet, device=args.device, compile=args.compile)
    if args.subset:  # --dataset, --data-dir, --limit not given: those the keep file was selected on
        data_args_from_keep(args, logger(args))
    spec = data_spec(args).for_model(args.model)
    data = spec.load()
    subset = (read_keep(args.subset, len(data.train_y), dataset=data.name, labels=data.train_y.numpy(),
                        data_dir=data.data_dir) if args.subset else None)
    metrics = train_run(spec, model=args.model, cfg=train_config(args), subset=subset,
                        log=logger(args), data=data, progress=not args.quiet, device=args.device,
                        compile=args.compile)
    return {**metrics, "subset": args.subset}


def resume(args: argparse.Namespace) -> dict[str, Any]:
    """``--resume DIR``: the run's own settings and thread count; other given values refused."""
    run_dir = Path(args.resume)
    refuse_resume_in_ranks("train")
    if args.force:
        raise DataPruneError("--force cannot be combined with --resume (resuming overwrites nothing); "
                             f"to start over use `dataprune train --out {run_dir} --force`")
    if args.subset or args.out:
        raise DataPruneError(f"--resume takes everything from {run_dir}; drop --subset/--out")
    config = RunDir(run_dir, "train").read_config() if (run_dir / "config.json").is_file() else None
    if config is not None:
        conflicts = [f"--{dest.replace('_', '-')} {given} (the run has {used})"
                     for dest, given, used in _given_settings(args, config) if given != used]
        if conflicts:
            raise DataPruneError(f"--resume takes the run's settings from {run_dir / 'config.json'}; drop "
                                 f"{', '.join(conflicts)}, or start a new run with --out")
    set_threads(args.threads if args.threads is not None else config.threads if config else None)
    return resume_run(run_dir, log=logger(args), progress=not args.quiet, device=args.device,
                      compile=args.compile)


def _given_settings(args: argparse.Namespace, config: RunConfig) -> Iterator[tuple[str, Any, Any]]:
    """(dest, given value, the run's value) for every run setting given on the command line."""
    for dest, used_in in RUN_SETTINGS.items():
        given = getattr(args, dest)
        if given is None:
            continue
        used = used_in(config)
        if dest == "data_dir":
            given = str(Path(given).resolve())
        if dest == "prune_at" and given == "auto":
            given = default_prune_at(config.train.epochs)
        yield dest, given, used

