"""``dataprune bench``: the paper's experiments at CPU scale, resumable, with tables and figures."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import DataPruneError
from ..train.imagefolder import DEFAULT_IMAGE_SIZE
from ..train.loop import VIEWS, TrainConfig
from ..train.models import MODELS, check_model_name, model_image_size
from .common import add_data_args, command_parser, logger, set_threads


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _seeds(text: str) -> list[int]:
    """``3`` -> seeds 0, 1, 2; ``0,4`` -> exactly those."""
    vals = _ints(text)
    if "," in text:
        return vals
    if len(vals) != 1 or vals[0] < 1:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected a count >= 1 or a list like 0,1,2")
    return list(range(vals[0]))


def _method_param(text: str) -> tuple[str, str, Any]:
    try:
        target, value = text.split("=", 1)
        method, key = target.rsplit(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--method-param {text!r}: expected METHOD.KEY=VALUE, "
                                         "e.g. tdds.window=5") from None
    for kind in (int, float):
        try:
            return method, key.replace("-", "_"), kind(value)
        except ValueError:
            pass
    return method, key.replace("-", "_"), {"true": True, "false": False}.get(value.lower(), value)


EXAMPLE = ("dataprune bench --dataset fashion-mnist --score-model small-cnn --train-models small-cnn,mlp "
           "--methods all --prune-ratios 0.25,0.3,0.4,0.5 --seeds 3 --out BENCH")


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "bench", "record once, prune with every method at every ratio, train each "
                                     "subset per seed, and write results, tables and figures (resumable)",
                       EXAMPLE)
    add_data_args(p)
    p.add_argument("--out", required=True, metavar="BENCH", help="benchmark folder (created, or resumed)")
    p.add_argument("--study", choices=("main", "cost", "one-run"), default="main",
                   help="main (default): every method; cost: Dyn-Unc from cheaper scoring runs "
                        "(train view, J, fewer epochs K, a proxy model) vs accuracy; one-run: pruning "
                        "inside one training run (--prune-at T) vs full, random and InfoBatch")
    p.add_argument("--score-model", type=_names, default=["small-cnn"], metavar="NAMES",
                   help=f"model(s) of the scoring run, comma-separated ({', '.join(sorted(MODELS))}, or "
                        "timm:NAME / torchvision:NAME); several give the cross-architecture table")
    p.add_argument("--train-models", type=_names, default=["small-cnn"], metavar="NAMES",
                   help="models trained on every subset, comma-separated (default small-cnn)")
    p.add_argument("--methods", default="all", metavar="NAMES",
                   help="comma-separated methods or 'all' (every registered method; default); "
                        "METHOD+beta: DUAL's Beta sampling, METHOD+ccs: CCS (e.g. aum+ccs)")
    p.add_argument("--prune-ratios", type=_floats, metavar="R,R,...",
                   help="fractions removed (default 0.25,0.3,0.4,0.5; cost study 0.25,0.5)")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], metavar="N|S,S",
                   help="training seeds: a count (3 = 0,1,2; default) or a list")
    p.add_argument("--score-epochs", type=int, default=30, metavar="K", help="scoring epochs K (default 30)")
    p.add_argument("--train-epochs", type=int, default=10, help="epochs of each training run (default 10)")
    p.add_argument("--window", type=int, default=10, metavar="J", help="Dyn-Unc window J (default 10)")
    p.add_argument("--record-view", choices=VIEWS, default="clean", help="view of the scoring run (default clean)")
    p.add_argument("--score-runs", type=int, default=1, metavar="N",
                   help="scoring runs (seeds 0..N-1) whose scores are averaged (Table 7 ablation; default 1)")
    p.add_argument("--subset-budget", choices=("epochs", "iterations"), default=None,
                   help="how long a subset trains: epochs (default): the same epochs as the full set (the "
                        "paper); iterations: as many optimizer steps as the full set gets")
    p.add_argument("--budget", choices=("epochs", "iterations"), dest="old_budget", help=argparse.SUPPRESS)
    p.add_argument("--baseline-budgets", type=_floats, metavar="B,B",
                   help="costs B of the matched-compute baseline (all data for round(B x the full run's "
                        "optimizer steps), schedule compressed); default: 1 - r for every prune ratio r "
                        "(none with --subset-budget iterations); one-run study: 0.5,0.6,0.7,0.8,0.9")
    p.add_argument("--no-baseline", action="store_true", help="do not train the matched-compute baseline")
    p.add_argument("--label-noise", type=float, default=0.0, metavar="RATE",
                   help="flip this fraction of training labels to another random class before scoring")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the label flips (default 0)")
    p.add_argument("--imbalance", type=float, default=1.0, metavar="FACTOR",
                   help="long-tailed training set: per-class counts decaying exponentially from the largest "
                        "class's to 1/FACTOR of it (e.g. 10 or 100; 1 = as loaded); the test set is unchanged")
    p.add_argument("--imbalance-seed", type=int, default=0, help="seed of the long-tailed subset (default 0)")
    p.add_argument("--ood-dataset", metavar="NAME",
                   help="also score OOD detection (AUPR of max-softmax, OOD positive) against this set: "
                        "digits (sklearn's bundled 8x8 digits, resized) or idx:DIR")
    p.add_argument("--class-balanced", action="store_true", help="keep the same ratio in every class")
    p.add_argument("--method-param", type=_method_param, action="append", default=[], metavar="M.KEY=V",
                   help="a method parameter, e.g. tdds.window=5 (repeatable)")
    p.add_argument("--cost-windows", type=_ints, default=[5, 10, 20], metavar="J,J",
                   help="cost study: Dyn-Unc windows on the reference run (default 5,10,20)")
    p.add_argument("--cost-epochs", type=_ints, default=[10, 20], metavar="K,K",
                   help="cost study: shorter scoring runs (default 10,20)")
    p.add_argument("--proxy-model", default="mlp", help="cost study: cheaper scoring model (default mlp)")
    p.add_argument("--prune-at", type=_ints, default=[1, 2, 3, 5], metavar="T,T",
                   help="one-run study: scoring epochs T (default 1,2,3,5; where the method allows)")
    p.add_argument("--record-every", type=_floats, default=[], metavar="F,F",
                   help="one-run study: also windowed methods recorded every F of an epoch (e.g. 0.5)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                   help=f"batch size of every run (default {TrainConfig.batch_size})")
    p.add_argument("--lr", type=float, default=TrainConfig.lr,
                   help=f"peak learning rate of SGD in every run (default {TrainConfig.lr})")
    p.add_argument("--no-full", action="store_true", help="do not train on the full set")
    p.add_argument("--max-cells", type=int, metavar="N", help="stop after N training cells (resume later)")
    p.add_argument("--report-only", action="store_true",
                   help="only regenerate results, tables and figures in --out from the finished cells")
    p.add_argument("--force", action="store_true",
                   help="resume into a bench folder made with other settings (never into a folder that is "
                        "not a dataprune bench folder)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="print only the final summary and errors")
    p.set_defaults(func=run)


def subset_budget(args: argparse.Namespace) -> str:
    """``--subset-budget``, or the deprecated ``--budget`` spelling (with a warning)."""
    if args.old_budget is not None:
        if args.subset_budget is not None and args.subset_budget != args.old_budget:
            raise DataPruneError(f"--budget {args.old_budget} and --subset-budget {args.subset_budget} disagree; "
                                 "expected only --subset-budget")
        from ..logs import get_logger
        get_logger("bench").warning("warning: `bench --budget epochs|iterations` is deprecated (it is not "
                                    "`train --budget B`); use --subset-budget")
        return args.old_budget
    return args.subset_budget or "epochs"


def baseline_budgets(args: argparse.Namespace, default: list[float]) -> list[float]:
    if args.no_baseline:
        if args.baseline_budgets:
            raise DataPruneError("--no-baseline and --baseline-budgets exclude each other; expected one of them")
        return []
    return list(args.baseline_budgets) if args.baseline_budgets is not None else default


def common_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every study shares (data and its regime, optimizer, seeds)."""
    if args.dataset == "imagefolder" and args.imbalance != 1:
        raise DataPruneError(f"--imbalance {args.imbalance:g} works with IDX datasets only; drop it for "
                             "--dataset imagefolder")
    return dict(dataset=args.dataset, data_dir=args.data_dir, limit=args.limit, workers=args.workers,
                seeds=args.seeds, batch_size=args.batch_size, lr=args.lr, label_noise=args.label_noise,
                noise_seed=args.noise_seed, imbalance=args.imbalance, imbalance_seed=args.imbalance_seed)


def build_config(args: argparse.Namespace):
    from ..bench import cost_config, main_config, matched_budgets
    for m in [*args.score_model, *args.train_models, *([args.proxy_model] if args.study == "cost" else [])]:
        check_model_name(m)
    image_size = args.image_size
    if image_size is not None and image_size < 1:  # 0 would silently become the default
        raise DataPruneError(f"--image-size {image_size}; expected a crop size of at least 1 pixel")
    if args.dataset == "imagefolder":
        if args.ood_dataset:
            raise DataPruneError("--ood-dataset works with IDX datasets only; drop it for --dataset imagefolder")
        image_size = image_size or model_image_size(args.score_model[0]) or DEFAULT_IMAGE_SIZE
    overrides: dict[str, dict[str, Any]] = {}
    for method, key, value in args.method_param:
        overrides.setdefault(method, {})[key] = value
    budget = subset_budget(args)
    ratios = args.prune_ratios or ([0.25, 0.5] if args.study == "cost" else [0.25, 0.3, 0.4, 0.5])
    common = dict(common_settings(args), image_size=image_size, train_models=args.train_models,
                  train_epochs=args.train_epochs, subset_budget=budget, ood_dataset=args.ood_dataset,
                  class_balanced=args.class_balanced, full=not args.no_full, prune_ratios=ratios,
                  baseline_budgets=baseline_budgets(args, matched_budgets(ratios) if budget == "epochs" else []))
    if args.study == "cost":
        return cost_config(model=args.score_model[0], proxy=args.proxy_model, score_epochs=args.score_epochs,
                           window=args.window, windows=args.cost_windows, short_epochs=args.cost_epochs, **common)
    return main_config(score_models=args.score_model, methods_=args.methods, window=args.window,
                       score_epochs=args.score_epochs, record_view=args.record_view, score_runs=args.score_runs,
                       method_overrides=overrides, **common)


ONE_RUN_METHODS = ("dual", "dyn-unc", "el2n", "forgetting")


def one_run_config(args: argparse.Namespace):
    from ..bench.one_run_study import BUDGET_CURVE, OneRunConfig, variants
    from ..methods import methods
    for m in args.train_models:
        if m not in MODELS:
            raise DataPruneError(f"unknown model {m!r}; expected one of {sorted(MODELS)}")
    names = ([m for m in ONE_RUN_METHODS if m in methods()] if args.methods == "all" else _names(args.methods))
    return OneRunConfig(**common_settings(args), arms=[(m, args.train_epochs) for m in args.train_models],
                        variants=variants(names, args.prune_at, args.prune_ratios or [0.3, 0.5],
                                          record_every=args.record_every, epochs=args.train_epochs),
                        baseline_budgets=baseline_budgets(args, list(BUDGET_CURVE)))


def run(args: argparse.Namespace) -> int:
    from ..bench import report_only, run_bench
    from ..fileio import read_json
    set_threads(args.threads)
    log = logger(args)
    if args.report_only:
        results = report_only(args.out, log=log)
    else:
        if args.study == "one-run":
            config = one_run_config(args)
        else:
            config = build_config(args)
            if args.ood_dataset:
                from ..bench.ood import load_ood
                load_ood(args.ood_dataset)  # a bad name or a missing sklearn fails before any training
        bench = run_bench(args.out, config, force=args.force, log=log, progress=not args.quiet,
                          max_cells=args.max_cells)
        results = read_json(bench.out / "results.json")
    print(f"{results['cells_finished']} of {results['cells_planned']} training cells finished (planned: every "
          f"cell this folder was ever asked for: methods or variants, ratios, baselines, train models, seeds); "
          f"table: {args.out}/table.md, results: {args.out}/results.csv")
    return 0
