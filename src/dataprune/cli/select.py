"""``dataprune select``: score a run's dynamics with a method and write the keep file."""
from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataPruneError
from ..fileio import check_writable, read_json, refuse_overwrite
from ..keepfile import check_suffix, keep_manifest, manifest_path, refuse_keep_overwrite, write_keep
from ..methods import DIFFICULTY_MEASURES, get, methods, score
from ..integrity import fingerprint_of
from ..methods._registry import _REGISTRY, input_digests, param_flags
from ..run_outputs import is_run_dir, run_dir_of
from ..select import NAN_POLICIES, check_seed, kept_count
from ..select_rule import SelectionRule, rule_inputs, select_by_rule
from ..store import Dynamics, is_store_dir
from ..train.prune_at import DEFAULT_WINDOW
from .common import command_parser


#: help of method parameters whose meaning is the same for every method that takes them.
PARAM_HELP = {"epochs": "use only the first T recorded epochs (early scoring; default 0 = all recorded epochs)"}

#: what a method parameter's special default means, shown by ``select --help``
PARAM_DEFAULTS = {"epochs": "0 = all recorded epochs", "epoch": "-1 = round(0.1*K), an early epoch",
                  "logits": "RUN/final_logits.npy", "features": "RUN/features.npy",
                  "num_clusters": "0 = number of classes"}


def method_params() -> dict[str, inspect.Parameter]:
    """Keyword-only parameters of all registered methods, by name (first definition wins)."""
    params: dict[str, inspect.Parameter] = {}
    for m in _REGISTRY.values():
        for p in inspect.signature(m.fn).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                params.setdefault(p.name, p)
    return params


#: the method parameter that also seeds the tie-break order of :func:`~dataprune.select`.
TIE_SEED = "seed"

#: Recorded epochs K a method needs with its default parameters (window J = min(10, K - 1)),
#: where more than 1 (signal methods) or 0 (methods that read no signal). Kept in step with
#: the methods' own checks by tests/test_cli_commands.py.
MIN_EPOCHS = {"dyn-unc": 3, "dual": 3, "tdds": 4, "cartography": 2}


def min_epochs(method: str) -> int:
    """Recorded epochs ``method`` needs with its default parameters (see :data:`MIN_EPOCHS`)."""
    return MIN_EPOCHS.get(method, 1 if get(method).needs else 0)


def usable_methods(dyn: Dynamics, epochs: int) -> list[str]:
    """Methods that can score ``dyn`` from ``epochs`` recorded epochs with their defaults: enough
    epochs, the signals they read recorded, the run files they read present."""
    run = run_dir_of(dyn)
    usable = []
    for name in methods():
        m = get(name)
        if not dyn.history.per_epoch:
            recorded = dyn.history.answers(name, m.needs)  # the running sums stand in for prob
        else:
            recorded = all(s in dyn.signals for s in m.needs)
        if recorded and min_epochs(name) <= epochs and all((run / f).is_file() for f in m.files):
            usable.append(name)
    return usable


def default_params(method: str, dyn: Dynamics, params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``params`` with the default window J = min(10, K - 1) of K epochs used (as ``train
    --prune-at``; a keep_history window store: the window it recorded) filled in, and a line
    saying so (None if nothing was filled in). Refuses, listing the methods that can, when
    ``method`` cannot score K epochs with its defaults."""
    given = params.get("epochs")
    k = given if isinstance(given, int) and 0 < given <= dyn.epochs else dyn.epochs
    fill = "window" in inspect.signature(get(method).fn).parameters and "window" not in params
    if fill and not dyn.history.per_epoch:
        return {**params, "window": dyn.window}, (f"{method}: --window {dyn.window}, the window the store "
                                                  f"recorded (keep_history {dyn.history})")
    if "window" not in params and k < min_epochs(method):
        what = (f"--epochs {k} uses {k} of the {dyn.epochs} recorded epochs of {dyn.path}" if k != dyn.epochs
                else f"the store {dyn.path} has {k}")
        usable = usable_methods(dyn, k)
        raise DataPruneError(f"method {method!r} needs at least {min_epochs(method)} recorded epochs"
                             f"{' with its default window min(10, K - 1)' if fill else ''} ({what}); "
                             f"methods usable with {k}: {', '.join(usable) or 'none'}")
    if not fill:
        return params, None
    j = min(DEFAULT_WINDOW, k - 1)
    used = f"K = {k} epochs used (--epochs)" if k != dyn.epochs else f"K = {k} recorded epochs"
    return {**params, "window": j}, f"{method}: --window {j}, the default min({DEFAULT_WINDOW}, K - 1) with {used}"


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "select", "score a run with a pruning method and write the keep file",
                       "dataprune select runs/fm --method dyn-unc --window 10 --prune-ratio 0.25 --out keep.txt")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune record` (or a dynamics store)")
    p.add_argument("--method", default="dyn-unc", help=f"one of {', '.join(methods())} (default dyn-unc; "
                                                       "`dataprune methods` describes them)")
    count = p.add_mutually_exclusive_group(required=True)
    count.add_argument("--prune-ratio", type=float, metavar="R",
                       help="fraction of samples removed, in [0, 1); N - round(R*N) are kept")
    count.add_argument("--keep", type=int, metavar="N",
                       help="instead of --prune-ratio: keep exactly N samples (the official code "
                            "keeps int(N_total * fraction))")
    p.add_argument("--out", required=True, help="keep file to write (.txt or .npy); a .json manifest goes beside it")
    p.add_argument("--nan-policy", choices=NAN_POLICIES, default="raise",
                   help="samples with NaN score (never observed): raise (default), prune or keep them")
    p.add_argument("--class-balanced", action="store_true",
                   help="remove the same fraction of every class (labels from the store)")
    p.add_argument("--stratified", action="store_true",
                   help="coverage-centric stratified sampling (CCS) over the method's scores")
    p.add_argument("--beta", type=float, default=0.0,
                   help="with --stratified: first drop this fraction of the hardest samples (by --beta-by)")
    p.add_argument("--beta-by", choices=list(DIFFICULTY_MEASURES), default=None, metavar="MEASURE",
                   help="with --beta: what 'hardest' means, from the same run: "
                        + "; ".join(f"{m}: {d}" for m, (_, d) in DIFFICULTY_MEASURES.items())
                        + " (default aum, as CCS)")
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
    add_quiet_arg(p)
    add_method_args(p)
    p.set_defaults(func=run)


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="print nothing on success (errors and warnings still go to stderr; the exit status tells)")


def add_method_args(p: argparse.ArgumentParser) -> None:
    """One ``--NAME`` option per method parameter (``dest=param_NAME``, default None = unset)."""
    group = p.add_argument_group("method parameters (each applies to the methods that take it)")
    for name, param in method_params().items():
        default = param.default
        kind = _parse_bool if isinstance(default, bool) else type(default) if default is not None else str
        users = [m for m in methods() if name in inspect.signature(get(m).fn).parameters]
        text = f"{', '.join(users)} (default {PARAM_DEFAULTS.get(name, default)})"
        if name == TIE_SEED:
            text = (f"seeds the random order that breaks ties between equal scores, for every "
                    f"method (same seed, same subset); also the seed of {', '.join(users)} (default 0)")
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"param_{name}", type=kind, default=None,
                           metavar=name.upper(),
                           help=f"{', '.join(users)}: {PARAM_HELP[name]}" if name in PARAM_HELP else text)


def chosen_params(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The method parameters given on the command line; refuses ones the method does not take."""
    accepted = inspect.signature(get(method).fn).parameters
    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    if TIE_SEED not in accepted:  # --seed also breaks ties (every method): not the method's
        given.pop(TIE_SEED, None)
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
    method does not read are verified by ``dataprune check`` and on ``record --resume``.
    """
    get(args.method)  # unknown method: clear error before opening anything
    if args.beta_sampling and (args.stratified or args.class_balanced or args.beta):
        raise DataPruneError("--beta-sampling cannot be combined with --stratified, --beta or --class-balanced")
    if not args.beta_sampling and (args.beta_c != 4.0 or args.beta_seed):
        raise DataPruneError("--beta-c and --beta-seed need --beta-sampling")
    params = chosen_params(args, args.method)
    given_seed = getattr(args, f"param_{TIE_SEED}", None)
    tie_seed = check_seed(0 if given_seed is None else given_seed)
    if args.stratified and given_seed is not None and TIE_SEED not in params:
        raise DataPruneError("--seed orders ties of top-k selection; with --stratified the sampling "
                             "(and its ties) is seeded by --stratified-seed")
    dyn = Dynamics.open(args.run)
    reads = set(get(args.method).needs) | ({"prob"} if args.beta_sampling else set())
    dyn.verify(sorted(reads))  # the signals this selection reads (see Dynamics.verify)
    kept_count(dyn.num_samples, args.prune_ratio, args.keep)  # validates the count before scoring
    params, note = default_params(args.method, dyn, params)
    check_suffix(args.out)
    file_list = _source_file_list(dyn, args) if args.file_list is not None else None
    if args.beta_by is not None and not args.beta:
        raise DataPruneError(f"--beta-by {args.beta_by} needs --stratified --beta B with B > 0")
    if not (args.beta_sampling or args.stratified) and (args.beta or args.strata != 50 or args.stratified_seed):
        raise DataPruneError("--beta, --strata and --stratified-seed need --stratified")
    rule = selection_rule(args, params, tie_seed)
    inputs = rule_inputs(rule, [dyn])
    outputs = {"--out": Path(args.out), "the manifest of --out": manifest_path(args.out)}
    if file_list is not None:
        outputs["--file-list"] = file_list[2]
    check_outputs(outputs, args.force, Path(args.out))  # before the (long) scoring
    inputs_read = input_digests(args.method, dyn, **params)  # verified before the (long) scoring
    scores = score(args.method, dyn, **params)
    keep = select_by_rule(scores, rule, args.prune_ratio, keep=args.keep, inputs=inputs).keep
    fields: dict[str, Any] = {}
    if inputs_read:  # the files read besides the store: the selection's fingerprint covers them
        fields.update(input_files=inputs_read,
                      inputs_fingerprint=fingerprint_of({"store": dyn.fingerprint, **inputs_read}))
    manifest = keep_manifest(args.method, params, args.prune_ratio, dyn.num_samples, dataset=dyn.meta.get("dataset"),
                             selection=rule.to_dict(), labels=dyn.labels, data_dir=_run_data_dir(dyn),
                             keep=args.keep, store=str(dyn.path.resolve()), store_fingerprint=dyn.fingerprint,
                             store_epochs=dyn.epochs, nan_policy=args.nan_policy,
                             created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields)
    listed = None
    if file_list is not None:
        from ..interop import format_file_list
        paths, labels, out = file_list
        listed = (out, format_file_list([paths[i] for i in keep.tolist()], np.asarray(labels)[keep]))
    path = write_keep(args.out, keep, manifest, force=args.force, file_list=listed)
    if args.quiet:
        return 0
    if note:
        print(note)
    how = [f"prune ratio {args.prune_ratio}" if args.keep is None else f"--keep {args.keep}", *_selection_words(args)]
    print(f"kept {len(keep)} of {dyn.num_samples} samples ({' '.join([args.method, param_flags(params)]).strip()}, "
          f"{', '.join(how)}) -> {path}")
    if file_list is not None:
        print(f"kept samples as a file list -> {file_list[2]}")
    return 0


def selection_rule(args: argparse.Namespace, params: dict[str, Any], tie_seed: int) -> SelectionRule:
    """The :class:`~dataprune.select_rule.SelectionRule` the selection flags describe."""
    common = {"class_balanced": args.class_balanced, "nan_policy": args.nan_policy}
    if args.beta_sampling:
        return SelectionRule("beta", seed=args.beta_seed, c=args.beta_c, epochs=params.get("epochs", 0), **common)
    if args.stratified:
        return SelectionRule("stratified", seed=args.stratified_seed, beta=args.beta, beta_by=args.beta_by or "aum",
                             strata=args.strata, **common)
    return SelectionRule("top-k", seed=tie_seed, **common)


def _selection_words(args: argparse.Namespace) -> list[str]:
    """How the kept samples were chosen beyond the top scores, for the result line."""
    words = []
    if args.beta_sampling:
        words.append(f"Beta sampling --beta-c {args.beta_c} --beta-seed {args.beta_seed}")
    if args.stratified:
        words.append(f"stratified (CCS) --strata {args.strata} --stratified-seed {args.stratified_seed}"
                     + (f" --beta {args.beta} --beta-by {args.beta_by or 'aum'}" if args.beta else ""))
    if args.class_balanced:
        words.append("class-balanced")
    return words


def _run_data_dir(dyn: Dynamics) -> str | None:
    """The ``data_dir`` of the `dataprune record` run holding the store, if it is in one."""
    config = dyn.path.parent / "config.json"
    info = read_json(config) if config.is_file() else None
    return info.get("data_dir") if isinstance(info, dict) and info.get("command") == "score" else None


def check_outputs(outputs: dict[str, Path], force: bool, keep_file: Path | None = None,
                  kind: str = "keep files") -> None:
    """Refuse outputs that are the same file, lie inside a scoring run or a dynamics store
    (even with --force), or exist without --force (the orphans of an interrupted write of
    ``keep_file`` aside: :func:`~dataprune.keepfile.orphan_outputs`); check that they can be
    written."""
    seen: dict[Path, str] = {}
    for what, path in outputs.items():
        real = path.resolve()
        if real in seen:
            raise DataPruneError(f"{what} {path} is the same file as {seen[real]}; choose another name")
        seen[real] = what
        for folder in real.parents:
            if is_store_dir(folder) or is_run_dir(folder):
                raise DataPruneError(f"{what} {path} lies inside the {'store' if is_store_dir(folder) else 'run'} "
                                     f"{folder}; write {kind} outside runs and stores")
    if keep_file is not None:
        refuse_keep_overwrite(keep_file, outputs.values(), force)
    for path in outputs.values():
        if keep_file is None:
            refuse_overwrite(path, force)
        check_writable(path)


def _source_file_list(dyn: Dynamics, args: argparse.Namespace):
    """(paths, labels, output path) for --file-list, checked before anything is written."""
    from ..interop import FILE_LIST, store_file_list
    listed = store_file_list(dyn)
    if listed is None:
        raise DataPruneError(f"--file-list: the store {dyn.path} has no {FILE_LIST}; it is written by "
                             "`dataprune record --dataset imagefolder` and `dataprune import-official "
                             "--file-list`")
    paths, labels = listed
    out = Path(args.file_list) if args.file_list else Path(args.out).with_suffix(".file_list.txt")
    return paths, labels, out
