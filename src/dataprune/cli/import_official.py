"""``dataprune import-official``: the official code's pred_prob_history/ -> a dynamics store."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DataPruneError
from ..fileio import read_json
from ..interop import import_official
from ..store import FORMAT
from .common import command_parser


def register(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "import-official",
                       "read the official Dyn-Unc code's pred_prob_history/prob_{epoch}.txt files "
                       "into a dynamics store (0 = not observed)",
                       "dataprune import-official runs/official --file-list file_list.txt --out runs/imported")
    p.add_argument("src", metavar="DIR", help="the official run's output folder, or its pred_prob_history/")
    p.add_argument("--out", required=True, metavar="STORE", help="dynamics store to create")
    p.add_argument("--file-list", metavar="FILE",
                   help="the run's file_list.txt ('path label' per sample): labels, and enables "
                        "`dataprune select --file-list`")
    p.add_argument("--num-classes", type=int, help="C (default: max label + 1 of --file-list; "
                                                   "required without --file-list)")
    p.add_argument("--force", action="store_true", help="overwrite an existing store")
    p.set_defaults(func=run)


def check_out(out: Path, force: bool) -> None:
    """Refuse ``--out`` unless it is absent, an empty folder, or a dataprune store (its
    ``meta.json`` says so; without ``force`` the store writer then refuses it): a folder of
    the user's, even one holding files named like a store's arrays (``labels.npy``,
    ``prob.npy``), is never written into or deleted, ``--force`` or not."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataPruneError(f"--out {out} is a file; expected a new directory for the store")
    entries = sorted(e.name for e in out.iterdir())
    if not entries:
        return
    try:
        meta = read_json(out / "meta.json")
    except DataPruneError:
        meta = None
    if not (isinstance(meta, dict) and meta.get("format") == FORMAT):
        names = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise DataPruneError(f"--out {out} is not a dataprune store (it holds {names}, no store meta.json); "
                             f"refusing to write into it{' even with --force' if force else ''}: choose a new "
                             "folder, or empty it yourself")


def run(args: argparse.Namespace) -> int:
    check_out(Path(args.out), args.force)
    dyn = import_official(args.src, args.out, file_list=args.file_list, num_classes=args.num_classes,
                          force=args.force)
    print(f"imported {dyn.epochs} epochs x {dyn.num_samples} samples -> {dyn.path}")
    return 0
