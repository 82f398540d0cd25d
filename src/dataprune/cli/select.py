"""``dataprune select``: score a run's dynamics with a method and write the keep file."""
from __future__ import annotations

import argparse
import inspect
import time
from typing import Any

import numpy as np

from .. import __version__
from ..errors import DataPruneError
from ..fileio import check_writable, refuse_overwrite
from ..keepfile import check_suffix, manifest_path, write_keep
from ..methods import get, methods, score
from ..methods._registry import _REGISTRY
from ..methods.dual import mean_prob
from ..select import NAN_POLICIES, num_kept, select, select_stratified
from ..select_beta import select_beta
from ..store import Dynamics
from .common import command_parser


#: help of method parameters whose meaning is the same for every method that takes them.
PARAM_HELP = {"epochs": "use only the first T recorded epochs (early scoring; default 0 = all recorded epochs)"}


def method_params() -> dict[str, inspect.Parameter]:
    """Keyword-only parameters of all registered methods, by name (first definition wins)."""
    params: dict[str, inspect.Parameter] = {}
    for m in _REGISTRY.values():
        for p in inspect.signature(m.fn).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                params.setdefault(p.name, p)
    return params


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "select", "score a run with a pruning method and write the keep file",
                       "dataprune select runs/fm --method dyn-unc --window 10 --prune-ratio 0.25 --out keep.txt")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune score` (or a dynamics store)")
    p.add_argument("--method", default="dyn-unc", help=f"one of {', '.join(methods())} (default dyn-unc; "
                                                       "`dataprune methods` describes them)")
    p.add_argument("--prune-ratio", type=float, required=True, metavar="R",
                   help="fraction of samples removed, in [0, 1); N - round(R*N) are kept")
    p.add_argument("--out", required=True, help="keep file to write (.txt or .npy); a .json manifest goes beside it")
    p.add_argument("--nan-policy", choices=NAN_POLICIES, default="raise",
                   help="samples with NaN score (never observed): raise (default), prune or keep them")
    p.add_argument("--class-balanced", action="store_true",
                   help="remove the same fraction of every class (labels from the store)")
    p.add_argument("--stratified", action="store_true",
                   help="coverage-centric stratified sampling (CCS) over the method's scores")
    p.add_argument("--beta", type=float, default=0.0,
                   help="with --stratified: first drop this fraction of highest-scoring (hardest) samples")
    p.add_argument("--strata", type=int, default=50, help="with --stratified: number of strata (default 50)")
    p.add_argument("--stratified-seed", type=int, default=0, help="with --stratified: sampling seed")
    p.add_argument("--beta-sampling", action="store_true",
                   help="DUAL's Beta sampling (for high ratios): draw the kept samples with probability "
                        "~ BetaPDF(mean prob over the scoring epochs) * score; scores must be >= 0 (dual, dyn-unc)")
    p.add_argument("--beta-c", type=float, default=4.0, metavar="C",
                   help="with --beta-sampling: c_D, how fast the Beta moves to easy samples as R grows (default 4)")
    p.add_argument("--beta-seed", type=int, default=0, help="with --beta-sampling: sampling seed (default 0)")
    p.add_argument("--file-list", nargs="?", const="", default=None, metavar="PATH",
                   help="also write the kept samples as 'relative/path label' lines (the official "
                        "code's file_list.txt format) to PATH (default: <out>.file_list.txt); needs a "
                        "run recorded from --dataset imagefolder or a store imported with a file list")
    p.add_argument("--force", action="store_true", help="overwrite an existing keep file")
    group = p.add_argument_group("method parameters (each applies to the methods that take it)")
    for name, param in method_params().items():
        default = param.default
        kind = _parse_bool if isinstance(default, bool) else type(default) if default is not None else str
        users = [m for m in methods() if name in inspect.signature(get(m).fn).parameters]
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"param_{name}", type=kind, default=None,
                           metavar=name.upper(),
                           help=f"{', '.join(users)}: {PARAM_HELP[name]}" if name in PARAM_HELP
                           else f"{', '.join(users)} (default {default})")
    p.set_defaults(func=run)


def chosen_params(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The method parameters given on the command line; refuses ones the method does not take."""
    accepted = inspect.signature(get(method).fn).parameters
    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    foreign = [k for k in given if k not in accepted]
    if foreign:
        raise DataPruneError(f"--{foreign[0].replace('_', '-')} does not apply to method {method!r}; "
                             f"it takes {[k for k in accepted if k != 'dynamics'] or 'no parameters'}")
    return given


def run(args: argparse.Namespace) -> int:
    get(args.method)  # unknown method: clear error before opening anything
    if args.beta_sampling and (args.stratified or args.class_balanced or args.beta):
        raise DataPruneError("--beta-sampling cannot be combined with --stratified, --beta or --class-balanced")
    if not args.beta_sampling and (args.beta_c != 4.0 or args.beta_seed):
        raise DataPruneError("--beta-c and --beta-seed need --beta-sampling")
    params = chosen_params(args, args.method)
    dyn = Dynamics.open(args.run)
    num_kept(dyn.num_samples, args.prune_ratio)  # validates the ratio before scoring
    check_suffix(args.out)
    for path in (args.out, manifest_path(args.out)):  # refuse before the (long) scoring
        refuse_overwrite(path, args.force)
    check_writable(args.out)
    file_list = _source_file_list(dyn, args) if args.file_list is not None else None
    scores = score(args.method, dyn, **params)
    labels = np.asarray(dyn.labels) if args.class_balanced else None
    selection: dict[str, Any] = {"class_balanced": args.class_balanced, "stratified": args.stratified}
    if args.beta_sampling:
        mu = mean_prob(dyn["prob"], params.get("epochs", 0))
        keep = select_beta(scores, mu, args.prune_ratio, seed=args.beta_seed, c=args.beta_c,
                           nan_policy=args.nan_policy)
        selection.update(beta_sampling=True, beta_c=args.beta_c, beta_seed=args.beta_seed,
                         mean_prob_epochs=params.get("epochs", 0))
    elif args.stratified:
        keep = select_stratified(scores, args.prune_ratio, beta=args.beta, strata=args.strata,
                                 seed=args.stratified_seed, labels=labels,
                                 class_balanced=args.class_balanced, nan_policy=args.nan_policy)
        selection.update(beta=args.beta, strata=args.strata, seed=args.stratified_seed)
    else:
        if args.beta or args.strata != 50 or args.stratified_seed:
            raise DataPruneError("--beta, --strata and --stratified-seed need --stratified")
        keep = select(scores, args.prune_ratio, labels=labels, class_balanced=args.class_balanced,
                      nan_policy=args.nan_policy)
    manifest = {"method": args.method, "params": params, "selection": selection,
                "prune_ratio": args.prune_ratio,
                "num_samples": dyn.num_samples, "store": str(dyn.path.resolve()),
                "store_fingerprint": dyn.fingerprint, "store_epochs": dyn.epochs,
                "dataset": dyn.meta.get("dataset"), "nan_policy": args.nan_policy,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dataprune": __version__}
    if file_list is not None:
        manifest["file_list"] = str(file_list[2])
    path = write_keep(args.out, keep, manifest, force=args.force)
    print(f"kept {len(keep)} of {dyn.num_samples} samples ({args.method}, prune ratio {args.prune_ratio}) "
          f"-> {path}")
    if file_list is not None:
        from ..interop import write_file_list
        paths, labels, out = file_list
        write_file_list(out, paths, labels, keep, force=args.force)
        print(f"kept samples as a file list -> {out}")
    return 0


def _source_file_list(dyn: Dynamics, args: argparse.Namespace):
    """(paths, labels, output path) for --file-list, checked before anything is written."""
    from pathlib import Path

    from ..fileio import refuse_overwrite
    from ..interop import FILE_LIST, read_file_list
    src = dyn.path / FILE_LIST
    if not src.exists():
        raise DataPruneError(f"--file-list: the store {dyn.path} has no {FILE_LIST}; it is written by "
                             "`dataprune score --dataset imagefolder` and `dataprune import-official "
                             "--file-list`")
    paths, labels = read_file_list(src)
    if len(paths) != dyn.num_samples:
        raise DataPruneError(f"{src} lists {len(paths)} samples but the store has {dyn.num_samples}")
    out = Path(args.file_list) if args.file_list else Path(args.out).with_suffix(".file_list.txt")
    refuse_overwrite(out, args.force)
    return paths, labels, out
