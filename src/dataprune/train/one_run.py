"""One training run that pays for its own pruning: ``dataprune train --prune-at T`` and
``--dynamic infobatch``, checkpointed every epoch and resumable.

Static pruning at T: epochs 0..T-1 train on all N samples while the train view is
recorded (the training forward's logits: no extra pass); after epoch T-1 the method scores
those T*m recordings (m = 1/record_every), N - round(R*N) samples are kept, and epochs
T..E-1 train on them. The optimizer state carries over, and the learning rate follows
:class:`~dataprune.train.loop.ProgressSchedule`: the warm-up/cosine curve as a function of
epoch progress, so every epoch gets the LR it would get in the full run whatever its size
(a per-step schedule over the shorter run's total steps would instead stretch the full
epochs' part of the curve). T = 0 (methods that read no signal, e.g. random) prunes before
epoch 0.

Run folder ``OUT``: ``config.json`` (everything needed to resume), ``dynamics/`` (the T
scoring epochs), ``keep.txt`` + ``keep.json`` (the subset and its manifest), ``log.jsonl``
(one row per epoch), ``state.pt`` (after every epoch: model, optimizer, schedule, RNG,
InfoBatch losses, counters), ``metrics.json`` (once finished).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..errors import DataPruneError
from ..fileio import LOCK_FILE, atomic_write_json, clear_for_force, exclusive_lock, read_json
from ..keepfile import read_keep, write_keep
from ..methods import get
from ..record import Recorder
from ..select import check_ratio
from ..store import Dynamics
from .data import ImageData
from .infobatch import InfoBatch
from .device import check_precision, grad_scaler, prepare_model, resolve_device
from .loop import ProgressSchedule, TrainConfig, check_record_every, make_optimizer, seed_everything, train
from .models import build_model
from .prune_at import prune_scores, resolve_method_params
from .runs import (DataSpec, atomic_torch_save, evaluate_data, labels_digest, load_checkpoint, run_loader,
                   start_run_files)

Log = Callable[[str], None]
STATE_FORMAT = "dataprune-train-state"
KEEP_FILE = "keep.txt"
DYNAMICS = ("infobatch",)


@dataclass
class PrunePlan:
    """What a run prunes: ``method`` at ``prune_at`` (T) keeping 1 - ``prune_ratio``, or
    ``dynamic="infobatch"`` (``infobatch_ratio``, ``infobatch_delta``), or nothing."""

    prune_at: int | None = None
    method: str | None = None
    prune_ratio: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    record_every: float = 1.0
    dynamic: str | None = None
    infobatch_ratio: float = 0.5
    infobatch_delta: float = 0.875

    def resolved(self, epochs: int, seed: int) -> "PrunePlan":
        """This plan checked against ``epochs`` (E), with the method's defaults filled in;
        a one-line error on bad input."""
        m = check_record_every(self.record_every)
        if self.dynamic is not None:
            if self.dynamic not in DYNAMICS:
                raise DataPruneError(f"--dynamic {self.dynamic!r}; expected one of {list(DYNAMICS)}")
            if self.prune_at is not None:
                raise DataPruneError("--dynamic and --prune-at exclude each other; expected one of them")
            InfoBatch(1, epochs, ratio=self.infobatch_ratio, delta=self.infobatch_delta)  # checks
            return self
        if self.prune_at is None:
            return self
        if isinstance(self.prune_at, bool) or not isinstance(self.prune_at, int) or not 0 <= self.prune_at < epochs:
            raise DataPruneError(f"--prune-at {self.prune_at} with --epochs {epochs}; expected 0 <= T < {epochs} "
                                 "(T epochs on the full set, then E-T on the subset)")
        check_ratio(self.prune_ratio)
        if not self.prune_ratio > 0:
            raise DataPruneError(f"--prune-ratio {self.prune_ratio}; expected a fraction in (0, 1) to remove")
        if self.method is None:
            raise DataPruneError("--prune-at needs --method")
        get(self.method)
        params = resolve_method_params(self.method, self.prune_at, m, params=self.params, seed=seed)
        return dataclasses.replace(self, params=params)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _signals(method: str) -> list[str]:
    return list(dict.fromkeys(("prob", "correct", *get(method).needs)))


#: who holds a run folder's lock, in the error a second process gets
TRAIN_USER = "`dataprune train` process"


def is_train_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run folder of ``dataprune train`` (its ``config.json`` says so)."""
    try:
        config = read_json(path / "config.json")
    except DataPruneError:
        return False
    return isinstance(config, dict) and config.get("command") == "train"


def start_run(out: str | Path, spec: DataSpec, *, model: str = "small-cnn", cfg: TrainConfig | None = None,
              plan: PrunePlan | None = None, data: ImageData | None = None, force: bool = False,
              log: Log | None = None, progress: bool = False, device: str | None = None,
              compile: bool = False) -> dict[str, Any]:
    """Train ``model`` once under ``plan`` in run folder ``out``; returns the metrics
    (also written to ``out/metrics.json``). Refuses an existing run folder unless ``force``.
    ``device`` and ``compile`` are runtime options (see :func:`~dataprune.train.runs.score_run`)."""
    cfg = cfg or TrainConfig()
    check_precision(cfg.precision, resolve_device(device))
    plan = (plan or PrunePlan()).resolved(cfg.epochs, cfg.seed)
    out = Path(out)
    if (out / "config.json").exists() and not force:
        hint = (f"; continue it with `dataprune train --resume {out}`, or pass --force to start over"
                if not read_json(out / "config.json").get("finished") else "; pass --force to overwrite it")
        raise DataPruneError(f"{out} already holds a training run{hint}")
    data = data if data is not None else spec.load()
    with exclusive_lock(out, TRAIN_USER):  # one process per run folder
        if force:  # only a folder this command made (or an empty one): never a user's own files
            clear_for_force(out, is_train_run_dir, "`dataprune train` run folder", keep=(LOCK_FILE,))
        return _start(out, spec, data, model=model, cfg=cfg, plan=plan, log=log, progress=progress,
                      device=device, compile=compile)


def _start(out: Path, spec: DataSpec, data: ImageData, *, model: str, cfg: TrainConfig, plan: PrunePlan,
           log: Log | None, progress: bool, device: str | None, compile: bool) -> dict[str, Any]:
    config = {"command": "train", "dataset": data.name, "data_dir": str(Path(data.data_dir).resolve()),
              "limit": spec.limit, "image_size": spec.image_size, "num_samples": len(data.train_y),
              "train_labels_digest": labels_digest(data.train_y), "model": model, "train": cfg.to_dict(),
              "plan": plan.to_dict(), "dataprune": __version__, "torch": torch.__version__, "finished": False}
    atomic_write_json(out / "config.json", config)
    return _run(out, config, data, state=None, log=log, progress=progress, device=device, compile=compile)


def resume_run(out: str | Path, *, data: ImageData | None = None, log: Log | None = None,
               progress: bool = False, device: str | None = None, compile: bool = False) -> dict[str, Any]:
    """Continue the interrupted run in ``out`` from its last finished epoch, in the right
    phase (recording, or on the kept subset); a finished run returns its metrics."""
    out = Path(out)
    if not (out / "config.json").is_file():
        raise DataPruneError(f"no training run to resume at {out} (config.json missing)")
    config = read_json(out / "config.json")
    if not isinstance(config, dict) or config.get("command") != "train":
        raise DataPruneError(f"{out / 'config.json'} does not describe a `dataprune train` run")
    if config.get("finished"):
        return read_json(out / "metrics.json")
    spec = DataSpec(config["dataset"], config["data_dir"], config["limit"], config.get("image_size"))
    data = data if data is not None else spec.load()
    if labels_digest(data.train_y) != config["train_labels_digest"]:
        raise DataPruneError(f"the training labels of {config['dataset']!r} differ from those run {out} "
                             "was started with; was the dataset replaced?")
    state = load_checkpoint(out / "state.pt") if (out / "state.pt").exists() else None
    if state is not None and state.get("format") != STATE_FORMAT:
        raise DataPruneError(f"{out / 'state.pt'} is not a dataprune training state")
    if log:
        log(f"resuming training run {out} after epoch {state['epoch'] if state else 0}")
    with exclusive_lock(out, TRAIN_USER):
        return _run(out, config, data, state=state, log=log, progress=progress, device=device, compile=compile)


def _prune(out: Path, plan: PrunePlan, data: ImageData, log: Log | None) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    dyn = Dynamics.open(out / "dynamics") if plan.prune_at else _Size(len(data.train_y))
    assert plan.method is not None
    keep = prune_scores(dyn, plan.method, plan.prune_ratio, **plan.params)
    seconds = time.perf_counter() - t0
    write_keep(out / KEEP_FILE, keep, {"method": plan.method, "params": plan.params, "prune_ratio": plan.prune_ratio,
                                       "prune_at": plan.prune_at, "record_every": plan.record_every,
                                       "num_samples": len(data.train_y), "dataset": data.name,
                                       "selection_seconds": seconds, "dataprune": __version__}, force=True)
    if log:
        log(f"pruned at epoch {plan.prune_at} with {plan.method} {plan.params}: keeping {len(keep)} of "
            f"{len(data.train_y)} samples ({out / KEEP_FILE})")
    return keep, seconds


@dataclass
class _Size:
    """Stands in for a store when a method reads no signal (random at T = 0)."""

    num_samples: int


def _run(out: Path, config: dict[str, Any], data: ImageData, *, state: dict[str, Any] | None,
         log: Log | None, progress: bool, device: str | None, compile: bool) -> dict[str, Any]:
    cfg, plan = TrainConfig(**config["train"]), PrunePlan(**config["plan"])
    dev = resolve_device(device)
    check_precision(cfg.precision, dev)
    n, model = len(data.train_y), config["model"]
    m = check_record_every(plan.record_every)
    seed_everything(cfg.seed)
    net = build_model(model, data.num_classes, data.in_channels, data.image_size)
    trained = prepare_model(net, dev, compile=compile)
    scaler = grad_scaler(dev, cfg.precision)  # one loss scale across the epochs (fp16 on CUDA)
    loader = run_loader(data, cfg, model)
    full = loader.indices
    optimizer, _ = make_optimizer(net, cfg, len(loader))
    schedule = ProgressSchedule(optimizer, cfg)
    ib = InfoBatch(n, cfg.epochs, ratio=plan.infobatch_ratio, delta=plan.infobatch_delta,
                   seed=cfg.seed) if plan.dynamic == "infobatch" else None
    start, passes, steps, seconds_before, select_seconds, per_epoch = 0, 0, 0, 0.0, 0.0, []
    cpu_before = 0.0
    if state is not None:
        try:
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["torch_rng"])
            if ib is not None:
                ib.load_state_dict(state["infobatch"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise DataPruneError(f"{out / 'state.pt'} does not fit this run ({' '.join(str(e).split())[:200]})") from None
        start, passes, steps = int(state["epoch"]), int(state["sample_passes"]), int(state["optimizer_steps"])
        seconds_before, select_seconds = float(state["seconds"]), float(state["selection_seconds"])
        per_epoch = json.loads(state["samples_per_epoch"])
        cpu_before = float(state.get("cpu_seconds", math.nan))
    start_run_files(out, start)  # crash leftovers removed, log cut to the resumed epoch
    t_scoring = plan.prune_at or 0
    recorder, keep = None, None
    if plan.prune_at is not None and start >= t_scoring:
        keep = read_keep(out / KEEP_FILE, n) if start > 0 or (out / KEEP_FILE).exists() else None
    if plan.prune_at is not None and start < t_scoring:
        if start == 0:
            recorder = Recorder(n, out / "dynamics", data.num_classes, signals=_signals(plan.method),
                                epochs=t_scoring * m, view="train", labels=data.train_y.numpy(), force=True,
                                meta={"dataset": data.name, "model": model, "seed": cfg.seed})
        else:
            recorder = Recorder.resume(out / "dynamics", epochs=int(state["store_epochs"]),
                                       fingerprint=str(state["store_fingerprint"]))
            recorder.load_state_dict(state.get("recorder", {}))
    t0, c0 = time.perf_counter(), time.process_time()
    if plan.prune_at == 0 and keep is None:
        keep, select_seconds = _prune(out, plan, data, log)
    for epoch in range(start, cfg.epochs):
        if ib is not None:
            loader.indices = torch.from_numpy(ib.epoch_indices(epoch))
        else:
            loader.indices = full if keep is None else torch.from_numpy(keep)
        schedule.start_epoch(epoch, len(loader))
        rows = train(trained, loader, cfg, recorder=recorder, record_view="train", optimizer=optimizer,
                     scheduler=schedule, start_epoch=epoch, stop_epoch=epoch + 1, progress=progress,
                     sample_loss=ib.loss if ib is not None else None,
                     record_every=plan.record_every if recorder is not None else 1.0, scaler=scaler)
        row = rows[0]
        passes, steps = passes + row["samples"], steps + len(loader)
        per_epoch.append(row["samples"])
        store_epochs, fingerprint, rec_state = 0, "", {}
        if recorder is not None:
            store_epochs, fingerprint, rec_state = recorder.epoch, recorder.fingerprint, recorder.state_dict()
        if recorder is not None and epoch + 1 == t_scoring:
            recorder.close()
            recorder = None
            keep, select_seconds = _prune(out, plan, data, log)
        seconds = seconds_before + time.perf_counter() - t0
        with open(out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        atomic_torch_save(out / "state.pt", {
            "format": STATE_FORMAT, "version": 1, "epoch": epoch + 1, "model": net.state_dict(),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(), "infobatch": ib.state_dict() if ib is not None else {},
            "sample_passes": passes, "optimizer_steps": steps, "seconds": seconds,
            "selection_seconds": select_seconds, "samples_per_epoch": json.dumps(per_epoch),
            "cpu_seconds": cpu_before + time.process_time() - c0,
            "store_epochs": store_epochs, "store_fingerprint": fingerprint, "recorder": rec_state})
        if log:
            log(f"train epoch {epoch + 1}/{cfg.epochs}: {row['samples']} samples, loss {row['loss']:.4f}  "
                f"train acc {row['train_accuracy']:.4f}  {row['seconds']:.1f}s")
    seconds = seconds_before + time.perf_counter() - t0
    cpu = cpu_before + time.process_time() - c0
    acc, _ = evaluate_data(net, data)
    metrics = {"test_accuracy": acc, "train_samples": int(per_epoch[-1]), "num_samples": n,
               "epochs": cfg.epochs, "seconds": seconds, "cpu_seconds": cpu, "sample_passes": int(passes),
               "full_equivalent": passes / (cfg.epochs * n), "optimizer_steps": int(steps),
               "samples_per_epoch": per_epoch, "selection_seconds": select_seconds,
               "keep_file": str(out / KEEP_FILE) if plan.prune_at is not None else None,
               "run_dir": str(out), "dataset": data.name, "model": model, "seed": cfg.seed,
               "plan": plan.to_dict(), "train": cfg.to_dict(),
               "final_train_loss": json.loads((out / "log.jsonl").read_text().splitlines()[-1])["loss"]}
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_json(out / "config.json", {**config, "finished": True})
    return metrics
