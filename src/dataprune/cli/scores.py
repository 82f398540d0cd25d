"""``dataprune scores``: every sample's score and rank under several methods, as CSV or Parquet."""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

from ..errors import DataPruneError
from ..fileio import check_writable, refuse_overwrite, writing
from ..methods import get, methods
from ..scores_export import check_scores_path, scores_table, write_scores
from ..select import NAN_POLICIES
from ..store import Dynamics
from .common import command_parser
from .select import TIE_SEED, add_method_args, add_quiet_arg, default_params


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "scores", "write every sample's score and rank under several methods",
                       "dataprune scores runs/fm --methods dyn-unc,el2n,forgetting --window 10 --out scores.csv")
    p.add_argument("run", metavar="RUN", help="run directory of `dataprune record` (or a dynamics store)")
    p.add_argument("--methods", required=True, metavar="M1,M2,...",
                   help=f"comma-separated, from {', '.join(methods())}")
    p.add_argument("--out", required=True, help="table to write: .csv, or .parquet (needs pyarrow)")
    p.add_argument("--nan-policy", choices=NAN_POLICIES, default="prune",
                   help="where samples with NaN score (never observed) rank: prune = last (default), "
                        "keep = first, raise = refuse; as in `select`")
    p.add_argument("--force", action="store_true", help="overwrite an existing table")
    add_quiet_arg(p)
    add_method_args(p)
    p.set_defaults(func=run)


def params_by_method(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each method's share of the given method parameters; refuses one no chosen method takes."""
    given = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    accepted = {m: inspect.signature(get(m).fn).parameters for m in names}
    for key in given:
        if key != TIE_SEED and not any(key in acc for acc in accepted.values()):
            raise DataPruneError(f"--{key.replace('_', '-')} does not apply to any of the methods {names}")
    return {m: {k: v for k, v in given.items() if k in acc} for m, acc in accepted.items()}


def run(args: argparse.Namespace) -> int:
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not names:
        raise DataPruneError(f"--methods {args.methods!r}; expected comma-separated method names")
    for name in names:
        get(name)  # unknown method: clear error before opening anything
    params = params_by_method(args, names)
    check_scores_path(args.out)
    refuse_overwrite(args.out, args.force)  # before the (long) scoring
    check_writable(args.out)
    dyn = Dynamics.open(args.run)
    notes = []
    for name in names:
        params[name], note = default_params(name, dyn, params[name])
        notes += [note] if note else []
    tie_seed = getattr(args, f"param_{TIE_SEED}", None)
    table = scores_table(dyn, names, params=params, nan_policy=args.nan_policy,
                         seed=0 if tie_seed is None else tie_seed)
    out = Path(args.out)
    with writing([out]):  # removes the temps a killed earlier write left
        path = write_scores(out, table, force=args.force)
    if not args.quiet:
        print("\n".join(notes + [f"scores and ranks of {dyn.num_samples} samples under {', '.join(names)} "
                                 f"-> {path}"]))
    return 0
