"""Data-parallel training under torch's launcher: ``dataprune record --nproc P`` hands itself
to torch's elastic agent (what ``torchrun --standalone --nproc-per-node P`` runs), and every
rank, however launched (``python -m torch.distributed.run ... -m dataprune record ...``, on
one node or several), joins the process group from torchrun's environment variables.

Each rank trains a ``DistributedDataParallel`` model on its shard of every epoch
(:func:`~dataprune.train.order.epoch_order`); the :class:`~dataprune.Recorder` merges the
ranks' records once per epoch and only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from datetime import timedelta
from typing import Callable, Iterator, Sequence, TypeVar

import torch

from ..errors import DataPruneError

T = TypeVar("T")

#: a rank that waits longer than this for the others fails instead of hanging
TIMEOUT = timedelta(minutes=30)
#: prefix of the elastic run id of :func:`launch_local`; its ranks leave error reports to it
LOCAL_RUN_PREFIX = "dataprune-local-"


def env_world_size() -> int:
    """WORLD_SIZE from the environment (set by torchrun), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def rank_threads() -> int | None:
    """CPU threads of one rank when none were asked for: None (torch's default) outside
    torchrun or when ``OMP_NUM_THREADS`` is set, else the cores shared among this node's ranks."""
    if env_world_size() <= 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def init_from_env(device: torch.device | None = None) -> tuple[int, int, bool]:
    """Join the process group described by torchrun's environment variables.

    Returns ``(rank, world_size, created)``; ``created`` is True when this call initialised
    the group (the caller then destroys it). nccl for a CUDA ``device``, else gloo.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if env_world_size() <= 1:
        return 0, 1, False
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)
    return dist.get_rank(), dist.get_world_size(), True


@contextlib.contextmanager
def process_group(device: torch.device | None = None) -> Iterator[tuple[int, int]]:
    """``(rank, world_size)`` inside the process group of :func:`init_from_env`, destroyed on
    exit when this call created it (after a barrier when the ranks finished normally, so that
    none leaves while another still uses the group)."""
    rank, world, created = init_from_env(device)
    try:
        yield rank, world
        if created:
            torch.distributed.barrier()
    finally:
        if created:
            torch.distributed.destroy_process_group()


def share_refusal(error: BaseException | None, world: int) -> None:
    """Raise rank 0's ``error`` (its one-line message) on every rank, so that no rank waits in
    a collective for a rank 0 that refused; ``error`` is what this rank caught (None: nothing).
    With one rank: raise ``error`` when there is one."""
    if world > 1:
        msg = [None if error is None else str(error)]
        torch.distributed.broadcast_object_list(msg, 0)
        if msg[0] is not None and error is None:
            raise DataPruneError(msg[0])
    if error is not None:
        raise error


def on_rank0(compute: Callable[[], T], rank: int, world: int) -> T:
    """``compute()`` run on rank 0 only (the rank that reads and writes the run's files) and
    its result sent to every rank; an error there is raised on every rank (:func:`share_refusal`)."""
    result, error = None, None
    if rank == 0:
        try:
            result = compute()
        except Exception as e:  # noqa: BLE001  (re-raised below, on every rank)
            error = e
    share_refusal(error, world)
    if world > 1:
        box = [result]
        torch.distributed.broadcast_object_list(box, 0)
        result = box[0]
    return result  # type: ignore[return-value]


def under_local_launcher() -> bool:
    """Whether this process is a rank started by :func:`launch_local` (which reports errors)."""
    return os.environ.get("TORCHELASTIC_RUN_ID", "").startswith(LOCAL_RUN_PREFIX)


def record_error(error: BaseException) -> None:
    """Write ``error`` to torchrun's error file for this rank (torch's ``ErrorHandler``; the
    launcher reads it), when there is one."""
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import get_error_handler
        get_error_handler().record_exception(error)


def launch_local(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m dataprune ARGV`` as ``nproc`` ranks on this machine with torch's
    elastic agent (standalone rendezvous on localhost, no restarts), as ``torchrun
    --standalone --nproc-per-node NPROC -m dataprune ARGV`` would. Rank 0 prints to the
    console; other ranks' output goes to torch's per-rank log files.

    Returns 0 when every rank succeeds. A failed rank raises one :class:`DataPruneError`
    line naming it ("rank 1 died (signal 9)", "rank 1 failed: ..."); a rank that refused
    its input (exit status 2) is reported by its own message, and 2 is returned by the CLI.
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logs = tempfile.mkdtemp(prefix="dataprune-ranks-")
    quiet = {r: Std.ALL for r in range(1, nproc)}
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=LOCAL_RUN_PREFIX + uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1,
                          logs_specs=DefaultLogsSpecs(log_dir=logs, redirects=quiet))
    elastic = logging.getLogger("torch.distributed.elastic")
    level, elastic.level = elastic.level, logging.CRITICAL  # the agent's own reports: ours is one line
    keep_logs = False
    try:
        elastic_launch(config, sys.executable)("-m", "dataprune", *argv)
    except ChildFailedError as e:
        rank, failure = culprit(e.failures)
        if failure.exitcode == 2:  # a refused input: the message is the user's error
            raise DataPruneError(message_of(failure)) from None
        keep_logs = rank != 0
        where = f" (its output: {logs})" if keep_logs else ""
        if failure.exitcode < 0:
            raise DataPruneError(f"rank {rank} died ({failure.signal_name()}){where}") from None
        raise DataPruneError(f"rank {rank} failed: {message_of(failure)}{where}") from None
    except SignalException:  # SIGINT/SIGTERM to the launcher: the agent has stopped the ranks
        raise KeyboardInterrupt from None
    finally:
        elastic.setLevel(level)
        if not keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
    return 0


def message_of(failure) -> str:
    """The one-line message a rank left in its error file (``record_error``), without the
    exception's type for dataprune's own errors."""
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", json.dumps(message))
    text = " ".join(str(message).split())
    for prefix in ("DataPruneError: ", "FileNotFoundError: ", "PermissionError: ", "OSError: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text or f"exit status {failure.exitcode}"


def is_rank_lost(text: str) -> bool:
    """Whether a rank's error says that another rank went away (a collective broke)."""
    return any(w in text for w in ("DistNetworkError", "DistBackendError", "Connection closed",
                                   "Connection reset", "Broken pipe", "gloo", "NCCL"))


def culprit(failures: dict) -> tuple[int, object]:
    """The rank that caused a failed run, of torchrun's ``{rank: ProcessFailure}``: one
    killed by a signal other than SIGTERM/SIGINT (those the agent sends to stop the other
    ranks), then one that failed with an error of its own, then one stopped by the agent,
    then one whose collective broke because a peer went away; the lowest rank among equals."""
    def key(item):
        rank, f = item
        if f.exitcode < 0:
            order = 2 if -f.exitcode in (signal.SIGTERM, signal.SIGINT) else 0
        else:
            order = 3 if is_rank_lost(message_of(f)) else 1
        return order, rank
    return min(failures.items(), key=key)
