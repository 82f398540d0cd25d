"""``dataprune import-official``: the official code's pred_prob_history/ -> a dynamics store."""
from __future__ import annotations

import argparse

from ..interop import import_official
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


def run(args: argparse.Namespace) -> int:
    dyn = import_official(args.src, args.out, file_list=args.file_list, num_classes=args.num_classes,
                          force=args.force)
    print(f"imported {dyn.epochs} epochs x {dyn.num_samples} samples -> {dyn.path}")
    return 0
