"""Arguments shared by several commands."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..errors import DataPruneError
from ..keepfile import keep_source, manifest_path, read_keep
from ..logs import get_logger
from ..train.data import DATASETS
from ..train.device import PRECISIONS, check_precision, resolve_device
from ..train.loop import TrainConfig
from ..train.models import MODELS
from ..train.runs import DataSpec


def command_parser(sub: argparse._SubParsersAction, name: str, help: str, example: str,
                   aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
    """A sub-command parser whose ``--help`` ends with ``example``; ``aliases``: other names
    that run it."""
    p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}", aliases=list(aliases),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="also log debug messages")
    return p


class Given(argparse.Action):
    """Store the option's value and remember that it was given (see :func:`given`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given_options = getattr(namespace, "given_options", frozenset()) | {self.dest}


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the option stored in ``dest`` (with ``action=Given``) was on the command line."""
    return dest in getattr(args, "given_options", ())


def add_data_args(p: argparse.ArgumentParser) -> None:
    names = sorted(DATASETS) + ["idx", "imagefolder"]
    p.add_argument("--dataset", default="fashion-mnist", metavar="NAME", action=Given,
                   help=f"one of {', '.join(names)} (idx: any IDX folder given by --data-dir; "
                        "imagefolder: --data-dir ROOT with train/<class>/<image> and optionally val/ or test/, "
                        "streamed from disk, needs torchvision); default fashion-mnist")
    p.add_argument("--data-dir", action=Given,
                   help="folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                        "t10k-... (default: the dataset's usual place), or the image folder ROOT")
    p.add_argument("--image-size", type=int, metavar="S",
                   help="imagefolder: train and score on S x S crops (default: the model's own size, "
                        "e.g. 224 for torchvision:resnet18; 32 for mlp/small-cnn)")
    p.add_argument("--workers", type=int, default=0, metavar="W",
                   help="imagefolder: DataLoader processes decoding images (default 0: the main process); "
                        "results do not depend on it")
    p.add_argument("--limit", type=int, metavar="N", action=Given,
                   help="use only N training samples: the first N of IDX files, a seeded class-stratified "
                        "sample of an image folder")


def add_train_args(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--model", default="small-cnn", metavar="NAME",
                   help=f"one of {', '.join(sorted(MODELS))}, or timm:NAME / torchvision:NAME "
                        "(random init; needs that library); default small-cnn")
    p.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                   help=f"samples per optimizer step (default {TrainConfig.batch_size})")
    p.add_argument("--lr", type=float, default=TrainConfig.lr,
                   help=f"peak learning rate of SGD (default {TrainConfig.lr})")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of initialisation, order and augmentation, in [0, 2**63 - 1] (default 0)")
    p.add_argument("--precision", choices=PRECISIONS, default=TrainConfig.precision,
                   help="fp32 (default), or mixed precision with torch.autocast: bf16 (CPU or GPU), "
                        "fp16 (GPU only, with a GradScaler); recorded in the run's config")
    p.add_argument("--device", metavar="DEV",
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu; under torchrun "
                        "each rank uses its LOCAL_RANK's GPU); the results' meaning does not depend on it")
    p.add_argument("--compile", action="store_true",
                   help="compile the model with torch.compile (faster steps after a slower first one)")


def add_nproc_arg(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--nproc", type=int, default=1, metavar="P",
                   help="train data-parallel (DistributedDataParallel) in P local processes started by "
                        "torch's launcher (gloo on CPU, nccl on GPUs), --batch-size samples each; the same as "
                        f"`python -m torch.distributed.run --standalone --nproc-per-node P -m dataprune {command} "
                        "...`, which also runs across nodes (docs/scale.md)")


def launch_or_join(args: argparse.Namespace) -> int | None:
    """``--nproc P``, once every setting has been checked (nothing is written before the ranks
    start). In a plain process with P > 1: run this command line as P ranks under torch's
    launcher and return its exit status. In a rank of torchrun (or with P = 1): return None
    after setting this process's threads (--threads, else the rank's share of the cores)."""
    from ..train import distributed as ddp
    if args.nproc < 1:
        raise DataPruneError(f"--nproc {args.nproc}; expected at least 1")
    world = ddp.env_world_size()
    if world == 1 and args.nproc > 1:  # hand over to torch's launcher: each rank runs this command
        return ddp.launch_local(args.nproc, args.argv)
    local = os.environ.get("LOCAL_WORLD_SIZE")
    if world > 1 and args.nproc not in (1, int(local or args.nproc)):
        raise DataPruneError(f"--nproc {args.nproc} under torchrun, which started {local} process(es) on this "
                             "node; drop --nproc")
    threads = args.threads if args.threads is not None or world == 1 else ddp.rank_threads()
    if threads is not None or world == 1:  # a rank under OMP_NUM_THREADS keeps that count
        set_threads(threads)
    return None


def refuse_resume_in_ranks(command: str) -> None:
    """``--resume`` continues a run in one process: refused in a rank of torchrun."""
    from ..train import distributed as ddp
    if ddp.env_world_size() > 1:
        raise DataPruneError(f"`dataprune {command} --resume` continues a run in one process, not in "
                             f"{ddp.env_world_size()} ranks of torchrun; run it without torchrun")


def add_run_tail(p: argparse.ArgumentParser, command: str, func: Callable[[argparse.Namespace], int],
                 settings: Iterable[str]) -> None:
    """What the two training commands (``record``, ``train``) share after their own options:
    ``--nproc``, ``--threads``, ``--force``, ``--quiet`` and the tracking of the run settings
    that ``--resume`` checks."""
    add_nproc_arg(p, command)
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: all cores, or their share in a rank; with --resume, "
                        "the run's own count, which bitwise-identical results need)")
    add_output_args(p)
    track_run_settings(p, func, settings)


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--quiet", action="store_true", help="print only results and errors")


def data_spec(args: argparse.Namespace) -> DataSpec:
    """The data the options name; refuses a size that is not a positive number of pixels
    (``--image-size 0`` would silently become the default)."""
    size = getattr(args, "image_size", None)
    if size is not None and size < 1:
        raise DataPruneError(f"--image-size {size}; expected a crop size of at least 1 pixel")
    return DataSpec(args.dataset, args.data_dir, args.limit, getattr(args, "image_size", None),
                    workers=getattr(args, "workers", 0))


def data_args_from_keep(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> list[str]:
    """``train --subset KEEP``: set ``--dataset``, ``--data-dir`` and ``--limit`` that were not
    given to the data KEEP was selected on (its manifest: :func:`~dataprune.keepfile.keep_source`),
    so that N matches; logs and returns them as flags. ``--data-dir`` is taken only for the manifest's
    dataset and when that folder exists here. :func:`~dataprune.keepfile.read_keep` still
    checks N and the labels of the data loaded."""
    source, taken = keep_source(args.subset), []
    if source.get("dataset") and given(args, "dataset") and args.dataset != source["dataset"]:
        return taken  # another dataset given: read_keep refuses the keep file, naming both
    if source.get("dataset") and not given(args, "dataset") and args.dataset != source["dataset"]:
        args.dataset = source["dataset"]
        taken.append(f"--dataset {args.dataset}")
    folder = source.get("data_dir")
    if (folder and not given(args, "data_dir") and args.dataset == source.get("dataset")
            and Path(folder).is_dir() and args.data_dir != folder):
        args.data_dir = folder
        taken.append(f"--data-dir {folder}")
    if source.get("num_samples") is not None and not given(args, "limit") and args.limit is None:
        args.limit = source["num_samples"]
        taken.append(f"--limit {args.limit}")
    if taken and log is not None:
        read_keep(args.subset)  # a bad keep file or manifest: its one-line error, before this line
        log(f"--subset {args.subset}: {' '.join(taken)}, as in {manifest_path(args.subset).name}")
    return taken


def train_config(args: argparse.Namespace, epochs: int | None = None) -> TrainConfig:
    """The run's TrainConfig; bad values (and a precision the device cannot run) are refused
    in one line."""
    cfg = TrainConfig(epochs=epochs if epochs is not None else args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      precision=getattr(args, "precision", TrainConfig.precision))
    if hasattr(args, "device"):
        check_precision(cfg.precision, resolve_device(args.device))
    return cfg


def logger(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress lines to the ``dataprune.cli`` logger (stderr, see :mod:`dataprune.logs`), or
    nothing with ``--quiet``."""
    if args.quiet:
        return None
    return get_logger("cli").info


def set_threads(threads: int | None = None) -> None:
    """Use ``threads`` CPU threads for torch (default: all cores)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise DataPruneError(f"--threads {threads}; expected at least 1")
    torch.set_num_threads(threads or os.cpu_count() or 1)


def track_run_settings(p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int],
                       settings: Iterable[str]) -> None:
    """Set ``p``'s command to ``func`` and make the defaults of its run ``settings`` None (kept
    in ``args.run_setting_defaults``), so the command can tell which were given: ``--resume``
    refuses a given setting that differs from the run's."""
    defaults = {dest: p.get_default(dest) for dest in settings}
    p.set_defaults(func=func, run_setting_defaults=defaults, **{dest: None for dest in settings})
