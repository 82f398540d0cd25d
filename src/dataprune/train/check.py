"""``dataprune check``: verify a scoring run or a dynamics store without changing it."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import DataPruneError
from ..fileio import read_json
from ..integrity import fingerprint_of
from ..keepfile import read_keep
from ..run_outputs import FEATURES_FILE, LOGITS_FILE
from ..store import Dynamics
from .rundir import (CHECKPOINT_FILE, DIGESTS_FILE, KEEP_FILE, METRICS_FILE, STATE_FILE, STORE_DIR, RunDir,
                     load_checkpoint, run_command)
from .runs import check_store_against_config


def check_run(path: str | os.PathLike) -> str:
    """Verify ``path`` (a run directory of ``dataprune record`` or ``train``, or a dynamics store).

    Reads every recorded row once: the store's content must match its fingerprint and each
    value its signal's range; a run's ``config.json`` (its settings' digest), ``state.pt`` and
    ``checkpoint.pt`` (their sha256 in ``digests.json``) and final outputs must agree with the
    store. Returns a one-line summary starting ``OK:``; raises
    :class:`~dataprune.errors.DataPruneError` at the first mismatch.
    """
    path = Path(path)
    run_dir = path if (path / "config.json").is_file() else None
    if run_dir is not None and run_command(run_dir) == "train":
        return check_train_run(run_dir)
    if run_dir is not None and run_command(run_dir) != "score":
        raise DataPruneError(f"{run_dir / 'config.json'} does not describe a dataprune run")
    store = Dynamics.open(path)
    summary = (f"store {store.path}: N={store.num_samples}, C={store.num_classes}, {store.epochs} epochs, "
               f"signals {','.join(store.signals) or f'none (keep_history {store.history}: dyn-unc running sums)'}, "
               f"view {store.view}, fingerprint {store.fingerprint}")
    if run_dir is None:
        store.verify()
        return f"OK: {summary}"
    run = RunDir(run_dir, "score")
    config = run.read_config()  # typed, and its settings' digest
    check_store_against_config(store, config, run_dir)
    planned = config.train.epochs
    state_file = run_dir / STATE_FILE
    if not state_file.exists():
        store.verify()
        if run.has_state():
            return (f"OK: store of run {run_dir} holds {store.epochs} of {planned} epochs, but {STATE_FILE} is "
                    f"missing: `--resume` cannot continue it (restore {STATE_FILE}, or start over with --force); "
                    f"{summary}")
        done = 0
    else:
        state = run.load_state(config)  # its digest, entries and config
        done, at = int(state["epoch"]), int(state["store_epochs"])
        if not (0 <= at <= store.epochs <= at + 1):
            raise DataPruneError(f"{state_file} checkpoints {at} store epochs but the store holds "
                                 f"{store.epochs}; expected {at} (or {at + 1} after a crash)")
        if not store.history.per_epoch and at != store.epochs:
            store.verify()  # a ring store cannot go back: compare only when in step
        else:
            expected = fingerprint_of(store.digests_after(at))
            if expected != state["store_fingerprint"]:
                raise DataPruneError(f"store {store.path} does not match {state_file}: its first {at} "
                                     f"epochs have fingerprint {expected}, the checkpoint expects "
                                     f"{state['store_fingerprint']}")
    if config.finished:
        if store.epochs != planned or done != planned:
            raise DataPruneError(f"{run_dir / 'config.json'} says finished but the store holds "
                                 f"{store.epochs} and {STATE_FILE} {done} of {planned} epochs")
        for name in (FEATURES_FILE, LOGITS_FILE):
            try:
                rows = np.load(run_dir / name, mmap_mode="r").shape[0]
            except (OSError, ValueError, EOFError) as e:
                raise DataPruneError(f"{run_dir / name} is missing or unreadable ({e})") from None
            if rows != store.num_samples:
                raise DataPruneError(f"{run_dir / name} has {rows} rows; expected {store.num_samples}")
        run.verify(CHECKPOINT_FILE)
        load_checkpoint(run_dir / CHECKPOINT_FILE)
        state_text = "finished"
    else:
        state_text = (f"unfinished, {done} of {planned} epochs checkpointed, the store holds {store.epochs}: "
                      f"`dataprune record --resume {run_dir}`")
    return f"OK: run {run_dir} ({state_text}); {summary}"


def check_train_run(run_dir: Path) -> str:
    """Verify a ``dataprune train`` run folder (``--prune-at``, ``--dynamic``, ``--budget``):
    its config (settings' digest), ``state.pt`` (sha256, entries), the store of its T scoring
    epochs and the keep file (against its manifest) when it has them; one line starting ``OK:``."""
    run = RunDir(run_dir, "train")
    config = run.read_config()
    parts = []
    if (run_dir / STATE_FILE).exists():
        done = int(run.load_state(config)["epoch"])
    elif run.has_state():
        raise DataPruneError(f"{run_dir / STATE_FILE} is missing, though {run_dir / DIGESTS_FILE} records it; "
                             "`--resume` cannot continue the run")
    else:
        done = 0
    if (run_dir / STORE_DIR).is_dir():
        store = Dynamics.open(run_dir / STORE_DIR)
        store.verify()
        parts.append(f"store of {store.epochs} recordings, fingerprint {store.fingerprint}")
    if (run_dir / KEEP_FILE).exists():
        keep = read_keep(run_dir / KEEP_FILE, config.num_samples)
        parts.append(f"keep file of {len(keep)} of {config.num_samples} samples")
    elif config.finished and config.plan is not None and config.plan.prune_at is not None:
        raise DataPruneError(f"{run_dir} is a finished --prune-at run but has no {KEEP_FILE}")
    if config.finished:
        acc = read_json(run_dir / METRICS_FILE).get("test_accuracy")
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 1 or math.isnan(acc):
            raise DataPruneError(f"{run_dir / METRICS_FILE} has test_accuracy={acc!r}; expected a fraction in [0, 1]")
        parts.append(f"{METRICS_FILE} (test accuracy {100 * acc:.2f} %)")
        state_text = f"finished, {done} epochs"
    else:
        state_text = f"unfinished, {done} epochs checkpointed: `dataprune train --resume {run_dir}`"
    return f"OK: train run {run_dir} ({state_text}){'; ' + ', '.join(parts) if parts else ''}"
