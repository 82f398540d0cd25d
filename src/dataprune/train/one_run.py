"""One training run in a run folder: ``dataprune train --prune-at T``, ``--dynamic infobatch``
and ``--budget B``, checkpointed every epoch and resumable (:class:`~.rundir.RunDir`).

Static pruning at T: epochs 0..T-1 train on all N samples while the train view is
recorded (the training forward's logits: no extra pass); after epoch T-1 the method scores
those T*m recordings (m = 1/record_every), N - round(R*N) samples are kept, and epochs
T..E-1 train on them. The optimizer state carries over, and the learning rate follows
:class:`~dataprune.train.schedule.ProgressSchedule`: the warm-up/cosine curve as a function of
epoch progress, so every epoch gets the LR it would get in the full run whatever its size.
T = 0 (methods that read no signal, e.g. random) prunes before epoch 0.

Budget B: all data, no pruning, ``round(B x E x steps per epoch)`` optimizer steps with the
warm-up/cosine curve compressed into exactly those steps (the last epoch may be partial):
the matched-compute baseline.

Run folder ``OUT``: see :mod:`~.rundir`; here also ``keep.txt`` + ``keep.json`` (the
subset and its manifest) and ``metrics.json`` (once finished).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataPruneError
from ..fileio import atomic_write_json, read_json
from ..keepfile import keep_manifest, read_keep, write_keep
from ..methods import score
from ..methods._registry import param_flags
from ..mislabeled import GATE, MIN_RECORDINGS
from ..record import Recorder
from ..store import Dynamics
from .device import check_precision, resolve_device
from .infobatch import InfoBatch
from .loop import TrainConfig, check_record_every
from .plan import DYNAMICS, PrunePlan
from ..select_rule import SelectionRule, rule_inputs, select_by_rule
from .prune_at import IN_RUN_RULE
from .rundir import KEEP_FILE, METRICS_FILE, STATE_FILE, STORE_DIR, RunConfig, RunDir, check_train_settings
from .runs import (DataSpec, check_same_data, claim_on_rank0, evaluate_data, log_epoch, refuse_lost_state, restore,
                   run_config)
from .training import Data, Training

__all__ = ["PrunePlan", "DYNAMICS", "start_run", "resume_run"]

Log = Callable[[str], None]


def start_run(out: str | Path, spec: DataSpec, *, model: str = "small-cnn", cfg: TrainConfig | None = None,
              plan: PrunePlan | None = None, budget: float | None = None, data: Data | None = None,
              force: bool = False, log: Log | None = None, progress: bool = False, device: str | None = None,
              compile: bool = False) -> dict[str, Any]:
    """Train ``model`` once under ``plan`` (or for ``budget`` B of the full run's optimizer
    steps) in run folder ``out``; returns the metrics (also written to ``out/metrics.json``).
    Refuses an existing run folder unless ``force``, and any other non-empty folder.

    Under torch.distributed (``torchrun`` or ``dataprune train --nproc``) every rank trains a
    DistributedDataParallel model on its shard and only rank 0 writes the run folder; a
    ``--prune-at`` run records the ranks' merged dynamics, rank 0 scores them and sends the
    keep to every rank; ``--dynamic infobatch`` is refused there (its per-sample losses live on
    the rank that saw the sample)."""
    from . import distributed as ddp
    cfg = cfg or TrainConfig()
    dev = resolve_device(device)
    check_precision(cfg.precision, dev)
    plan = (plan or PrunePlan()).resolved(cfg.epochs, cfg.seed)
    check_train_settings(cfg, plan, budget)
    with ddp.process_group(dev) as (rank, world):
        if world > 1 and plan.dynamic is not None:
            raise DataPruneError(f"--dynamic {plan.dynamic} trains in one process only, not in {world}; drop "
                                 "--nproc (or torchrun)")
        with claim_on_rank0(out, "train", force, rank, world) as run:
            data = data if data is not None else spec.load()
            config = run_config("train", spec, data, model, cfg, plan=plan, budget=budget, world_size=world)
            if rank == 0:
                run.start(config)
            return _train(run, config, data, state=None, log=log if rank == 0 else None,
                          progress=progress and rank == 0, device=dev, compile=compile, rank=rank, world=world)


def resume_run(out: str | Path, *, data: Data | None = None, log: Log | None = None,
               progress: bool = False, device: str | None = None, compile: bool = False) -> dict[str, Any]:
    """Continue the interrupted run in ``out`` from its last finished epoch, in the right
    phase (recording, or on the kept subset); a finished run returns its metrics. The
    config (digest-checked) and ``state.pt`` (digest-checked, every RNG state) decide all."""
    with RunDir.reopen(out, "train") as (run, config):
        if config.finished:
            return read_json(run / METRICS_FILE)
        if config.world_size > 1:
            raise DataPruneError(f"training run {run.path} ran with {config.world_size} processes; --resume "
                                 "supports single-process runs only (restart it with --force)")
        data = data if data is not None else DataSpec.of(config).load()
        check_same_data(config, data, run.path)
        state = None
        if (run / STATE_FILE).exists():
            state = run.load_state(config)
        else:
            refuse_lost_state(run)
        if log:
            log(f"resuming training run {run.path} after epoch {state['epoch'] if state else 0}")
        return _train(run, config, data, state=state, log=log, progress=progress, device=device, compile=compile)


def _prune(run: RunDir, plan: PrunePlan, data: Data, log: Log | None) -> tuple[np.ndarray, float]:
    """Score the T epochs, select (two-sided when the plan says so and the labels look noisy)
    and write the keep file; ``(keep, seconds)``."""
    t0 = time.perf_counter()
    n = len(data.train_y)
    dyn = Dynamics.open(run / STORE_DIR) if plan.prune_at else _Size(n)
    assert plan.method is not None
    rule = SelectionRule("two-sided", nan_policy="prune") if plan.mislabeled == "auto" else IN_RUN_RULE
    inputs = rule_inputs(rule, [dyn])
    chosen = select_by_rule(score(plan.method, dyn, **plan.params), rule, plan.prune_ratio, inputs=inputs)
    keep = chosen.keep
    note = _gate_note(inputs.noise_rate, chosen.facts["suspects_dropped"], dyn.epochs) if chosen.facts else ""
    seconds = time.perf_counter() - t0
    write_keep(run / KEEP_FILE, keep, keep_manifest(plan.method, plan.params, plan.prune_ratio, n, dataset=data.name,
                                                    prune_at=plan.prune_at, record_every=plan.record_every,
                                                    mislabeled=plan.mislabeled, **chosen.facts,
                                                    selection_seconds=seconds), force=True)
    if log:
        log(f"pruned at epoch {plan.prune_at} with {' '.join([plan.method, param_flags(plan.params)]).strip()}: "
            f"keeping {len(keep)} of {n} samples ({run / KEEP_FILE}){note}")
    return keep, seconds


def _gate_note(rate: float, suspects: int, recordings: int) -> str:
    """What the noise gate decided, for the log line of :func:`_prune`."""
    if suspects:
        return f"; estimated label noise {100 * rate:.1f} %: dropped the {suspects} most likely mislabeled first"
    if recordings < MIN_RECORDINGS:
        return f"; one-sided: the noise gate needs {MIN_RECORDINGS} recordings (T >= 2)"
    return f"; estimated label noise {100 * rate:.1f} % (below {100 * GATE:.0f} %: one-sided)"


@dataclass
class _Size:
    """Stands in for a store when a method reads no signal (random at T = 0)."""

    num_samples: int


def _train(run: RunDir, config: RunConfig, data: Data, *, state: dict[str, Any] | None,
           log: Log | None, progress: bool, device: str | torch.device | None, compile: bool, rank: int = 0,
           world: int = 1) -> dict[str, Any]:
    """Epochs from ``state`` (None: the start) to the end, then the test; rank 0 writes the
    run folder (log, store, keep file, ``state.pt``, metrics) and prunes, every rank evaluates
    its (equal) weights."""
    from . import distributed as ddp
    cfg, plan = config.train, config.plan or PrunePlan()
    n = len(data.train_y)
    m = check_record_every(plan.record_every)
    training = Training(data, config.model, cfg, budget=config.budget, rank=rank, world=world, device=device,
                        compile=compile)
    ib = InfoBatch(n, cfg.epochs, ratio=plan.infobatch_ratio, delta=plan.infobatch_delta,
                   seed=cfg.seed) if plan.dynamic == "infobatch" else None
    start, seconds_before, select_seconds, cpu_before = 0, 0.0, 0.0, 0.0
    if state is not None:
        restore(training, state, run / STATE_FILE)
        if ib is not None:
            ib.load_state_dict(state["infobatch"])
        start, seconds_before = int(state["epoch"]), float(state["seconds"])
        select_seconds, cpu_before = float(state["selection_seconds"]), float(state["cpu_seconds"])
    if rank == 0:
        run.prepare(start)  # crash leftovers removed, log cut to the resumed epoch
    t_scoring = plan.prune_at or 0
    recorder, keep = None, None
    if plan.prune_at is not None and start >= t_scoring:
        keep = read_keep(run / KEEP_FILE, n) if start > 0 or (run / KEEP_FILE).exists() else None
    if plan.prune_at is not None and start < t_scoring:
        if start == 0:
            recorder = Recorder(n, run / STORE_DIR, data.num_classes, signals=plan.signals(),
                                epochs=t_scoring * m, view="train", labels=data.train_y.numpy(), force=True,
                                meta={"dataset": data.name, "model": config.model, "seed": cfg.seed})
        else:
            assert state is not None
            recorder = Recorder.resume(run / STORE_DIR, epochs=int(state["store_epochs"]),
                                       fingerprint=str(state["store_fingerprint"]))
            recorder.load_state_dict(state.get("recorder", {}))
    t0, c0 = time.perf_counter(), time.process_time()
    if plan.prune_at == 0 and keep is None:
        keep, select_seconds = ddp.on_rank0(lambda: _prune(run, plan, data, log), rank, world)
    for epoch in range(start, training.epochs):
        indices = ib.epoch_indices(epoch) if ib is not None else keep
        row = training.epoch(epoch, indices=indices, recorder=recorder, record_view="train",
                             record_every=plan.record_every if recorder is not None else 1.0,
                             sample_loss=ib.loss if ib is not None else None, progress=progress)
        store_epochs, fingerprint, rec_state = 0, "", {}
        if recorder is not None and rank == 0:
            store_epochs, fingerprint, rec_state = recorder.recordings, recorder.fingerprint, recorder.state_dict()
        if recorder is not None and epoch + 1 == t_scoring:
            recorder.close()
            recorder = None
            keep, select_seconds = ddp.on_rank0(lambda: _prune(run, plan, data, log), rank, world)
        if rank == 0:
            run.append_log(row)
            run.save_state(config, {
                **training.state_dict(), "epoch": epoch + 1,
                "infobatch": ib.state_dict() if ib is not None else {},
                "seconds": seconds_before + time.perf_counter() - t0, "selection_seconds": select_seconds,
                "cpu_seconds": cpu_before + time.process_time() - c0,
                "store_epochs": store_epochs, "store_fingerprint": fingerprint, "recorder": rec_state})
        log_epoch(log, "train", epoch, training.epochs, row)
    seconds, cpu = seconds_before + time.perf_counter() - t0, cpu_before + time.process_time() - c0
    acc, split = evaluate_data(training.net, data)
    last = row if start < training.epochs else run.read_log()[-1]  # (a resumed run is one process)
    metrics = {**training.metrics(data, last, acc, split), "seconds": seconds,
               "cpu_seconds": cpu, "selection_seconds": select_seconds,
               "keep_file": str(run / KEEP_FILE) if plan.prune_at is not None else None,
               "run_dir": str(run.path), "plan": plan.to_dict(), "budget": config.budget}
    if rank == 0:
        atomic_write_json(run / METRICS_FILE, metrics)
        run.finish(config)
    return metrics
