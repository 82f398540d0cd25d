"""``dataprune`` command line: thin wrappers over the library, one module per command."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from torch.distributed.elastic.multiprocessing.errors import record as record_errors

from ..errors import DataPruneError
from ..logs import configure as configure_logging
from ..train import distributed as ddp
from . import bench, check, demo, import_official, methods, plot, record, scores, select, train
from .terms import cli_terms

COMMANDS = (record, select, scores, plot, train, methods, demo, bench, import_official, check)

EXAMPLES = """examples:
  dataprune demo                                   # Fashion-MNIST, end to end, ~6 min on 2 cores
  dataprune record --dataset fashion-mnist --model small-cnn --epochs 30 --out runs/fm
  dataprune select runs/fm --method dyn-unc --window 10 --prune-ratio 0.25 --out keep.txt
  dataprune scores runs/fm --methods dyn-unc,el2n --window 10 --out scores.csv
  dataprune plot runs/fm --keep keep.txt --out fm_datamap.png      # the data map, pruned samples marked
  dataprune train --dataset fashion-mnist --model small-cnn --epochs 20 --subset keep.txt --metrics-out m.json
  dataprune record --nproc 2 --dataset imagefolder --data-dir ROOT --model timm:resnet18 --out runs/img
  dataprune import-official runs/official --file-list file_list.txt --out runs/imported
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dataprune", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Prune training sets with Dynamic Uncertainty (Dyn-Unc) and compare pruning methods.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def _version() -> str:
    from .. import __version__
    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn user errors into one line on stderr with exit code 2.

    Under torchrun the error also goes to the rank's error file (torch's ``record``, which
    torchrun's failure summary reads), and a rank started by ``--nproc`` leaves its report
    to the launcher, which prints one line.
    """
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):  # a rank of torchrun
        return record_errors(_main)(argv)
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc hands to each rank
    configure_logging(-1 if getattr(args, "quiet", False) else args.verbose)
    if args.command == record.DEPRECATED_ALIAS:
        _run_as_record(args)
    try:
        return int(args.func(args) or 0)
    except (DataPruneError, OSError) as e:  # bad values, and missing/unreadable/unwritable paths
        ddp.record_error(e)
        if not ddp.under_local_launcher():
            rank = f"rank {ddp.env_rank()}: " if ddp.env_world_size() > 1 else ""
            print(f"dataprune {args.command}: error: {rank}{_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dataprune {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  a rank of --nproc: one line from the launcher, not a traceback
        if not ddp.under_local_launcher():
            raise
        ddp.record_error(e)
        return 1


def _run_as_record(args: argparse.Namespace) -> None:
    """``dataprune record`` (deprecated): one note on stderr (rank 0), then the same run as
    ``dataprune record``, which is also what the ranks of ``--nproc`` are started with."""
    if ddp.env_rank() == 0:
        print(f"dataprune {record.DEPRECATED_ALIAS}: deprecated name, use `dataprune {record.NAME}` "
              "(same options)", file=sys.stderr)
    args.command = record.NAME
    args.argv[args.argv.index(record.DEPRECATED_ALIAS)] = record.NAME


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror}: {e.filename}"
    return cli_terms(" ".join(str(e).split()))
