"""``dataprune select``: score a run's dynamics with a method and write the keep file."""
from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import DataPruneError
from ..fileio import check_writable, refuse_overwrite
from ..keepfile import check_suffix, manifest_path, write_keep
from ..methods import get, methods, score
from ..methods._registry import _REGISTRY
from ..select import NAN_POLICIES, num_kept, select, select_stratified
from ..run_outputs import is_run_dir
from ..store import Dynamics, is_store_dir
from .common import command_parser


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
                           help=f"{', '.join(users)} (default {default})")
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
    """Score, select, write the keep file and its manifest.

    The store is verified first (:meth:`~dataprune.Dynamics.verify`), but only over the
    signals the method reads: one extra sequential read and hash of what scoring reads
    anyway (about 0.1 s hash + 0.1 s range check per 14.2M-sample float16 epoch on a
    contended 2-core CPU, i.e. ~15 s added to dyn-unc's ~8 s at 14.2M x 90), so the
    manifest's fingerprint always describes the data the keep file came from. Signals the
    method does not read are verified by ``dataprune check`` and on ``score --resume``.
    """
    get(args.method)  # unknown method: clear error before opening anything
    params = chosen_params(args, args.method)
    dyn = Dynamics.open(args.run)
    dyn.verify(get(args.method).needs)  # the signals this method reads (see Dynamics.verify)
    num_kept(dyn.num_samples, args.prune_ratio)  # validates the ratio before scoring
    check_suffix(args.out)
    file_list = _source_file_list(dyn, args) if args.file_list is not None else None
    outputs = {"--out": Path(args.out), "the manifest of --out": manifest_path(args.out)}
    if file_list is not None:
        outputs["--file-list"] = file_list[2]
    _check_outputs(outputs, args.force)  # before the (long) scoring
    scores = score(args.method, dyn, **params)
    labels = np.asarray(dyn.labels) if args.class_balanced else None
    selection: dict[str, Any] = {"class_balanced": args.class_balanced, "stratified": args.stratified}
    if args.stratified:
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
    if file_list is not None:  # before the keep file, which is written last (with its manifest)
        from ..interop import write_file_list
        paths, labels, out = file_list
        write_file_list(out, paths, labels, keep, force=args.force)
    path = write_keep(args.out, keep, manifest, force=args.force)
    print(f"kept {len(keep)} of {dyn.num_samples} samples ({args.method}, prune ratio {args.prune_ratio}) "
          f"-> {path}")
    if file_list is not None:
        print(f"kept samples as a file list -> {file_list[2]}")
    return 0


def _check_outputs(outputs: dict[str, Path], force: bool) -> None:
    """Refuse outputs that are the same file, lie inside a scoring run or a dynamics store
    (even with --force), or exist without --force; check that they can be written."""
    seen: dict[Path, str] = {}
    for what, path in outputs.items():
        real = path.resolve()
        if real in seen:
            raise DataPruneError(f"{what} {path} is the same file as {seen[real]}; choose another name")
        seen[real] = what
        for folder in real.parents:
            if is_store_dir(folder) or is_run_dir(folder):
                raise DataPruneError(f"{what} {path} lies inside the {'store' if is_store_dir(folder) else 'run'} "
                                     f"{folder}; write keep files outside runs and stores")
        refuse_overwrite(path, force)
        check_writable(path)


def _source_file_list(dyn: Dynamics, args: argparse.Namespace):
    """(paths, labels, output path) for --file-list, checked before anything is written."""
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
    return paths, labels, out
