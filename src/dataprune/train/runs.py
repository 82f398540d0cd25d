"""A scoring run (``dataprune record``) and a plain training (``dataprune train``), end to end,
as the CLI and benchmarks use them. Both train through :class:`~.training.Training` (the
one training path); a scoring run lives in a :class:`~.rundir.RunDir`."""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .. import keepfile
from ..errors import DataPruneError
from ..history import HistoryMode
from ..record import ALL_SIGNALS, EXTRA_SIGNALS, Recorder
from ..run_outputs import save_final_outputs
from ..store import Dynamics
from .data import InMemoryLoader, accuracy, evaluate, load_dataset
from .device import check_precision, resolve_device
from .imagefolder import DEFAULT_IMAGE_SIZE, FolderData
from .loop import TrainConfig, predict
from .models import model_image_size
from .rundir import (CHECKPOINT_FILE, COMMAND_LINE, STATE_FILE, STORE_DIR, RunConfig, RunDir, check_score_settings,
                     load_checkpoint, read_log, set_rng_states)
from .training import Data, Training, run_loader

__all__ = ["DataSpec", "ScoreResult", "score_run", "resume_score_run", "train_run", "evaluate_data",
           "load_checkpoint", "read_log", "run_loader", "Data", "STATE_FILE"]

Log = Callable[[str], None]


@dataclass
class DataSpec:
    """Which dataset to load: a registered name (or ``idx``), an optional directory and limit;
    for image folders also the image size (None: the model's, see :meth:`for_model`) and the
    number of DataLoader worker processes that decode them."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    limit: int | None = None
    image_size: int | None = None  # imagefolder only (default: the model's, else 32); config.json records the size used
    workers: int = 0  # imagefolder only; results do not depend on it

    def for_model(self, model: str) -> "DataSpec":
        """This spec with an image folder's size set from ``model`` when none was given
        (:func:`~dataprune.train.models.model_image_size`, else 32)."""
        if self.dataset != "imagefolder" or self.image_size is not None:
            return self
        return dataclasses.replace(self, image_size=model_image_size(model) or DEFAULT_IMAGE_SIZE)

    def load(self) -> Data:
        return load_dataset(self.dataset, self.data_dir, self.limit, image_size=self.image_size,
                            workers=self.workers)

    @classmethod
    def of(cls, config: RunConfig, workers: int | None = None) -> "DataSpec":
        """The data a run's config names (``workers`` overrides the run's own count)."""
        return cls(config.dataset, config.data_dir, config.limit, config.image_size,
                   workers=config.workers if workers is None else workers)


def run_config(command: str, spec: DataSpec, data: Data, model: str, cfg: TrainConfig, **fields: Any) -> RunConfig:
    """A new run's config: the data as loaded, the model, the settings, this process's threads."""
    return RunConfig(command=command, dataset=data.name, data_dir=str(Path(data.data_dir).resolve()),
                     limit=spec.limit, image_size=data.image_size,
                     workers=spec.workers, num_samples=len(data.train_y), num_classes=data.num_classes,
                     train_labels_digest=labels_digest(data.train_y), model=model, train=cfg,
                     threads=torch.get_num_threads(), **fields)


def check_same_data(config: RunConfig, data: Data, run: Path) -> None:
    """Refuse to resume ``run`` on data that is not what it was started on (N, labels)."""
    n = len(data.train_y)
    if n != config.num_samples:
        raise DataPruneError(f"dataset {config.dataset!r} at {config.data_dir} now has N={n} training "
                             f"samples, but the run {run} was started with N={config.num_samples}")
    if config.train_labels_digest != labels_digest(data.train_y):
        raise DataPruneError(f"the training labels of dataset {config.dataset!r} at {config.data_dir} "
                             f"differ from those the run {run} was started with; was the dataset replaced?")


def store_epochs(run: RunDir) -> int:
    """Epochs the run's store holds (0 when it is absent or was never completed)."""
    try:
        return Dynamics.open(run / STORE_DIR).epochs
    except DataPruneError:
        return 0


def refuse_lost_state(run: RunDir) -> None:
    """Item of trust: ``--resume`` without ``state.pt`` may restart from epoch 0 only when
    nothing was checkpointed yet (no digest of a state, at most the one epoch a crash between
    the store and the first checkpoint leaves); otherwise it refuses, deleting nothing."""
    held = store_epochs(run)
    if run.has_state() or held > 1:
        raise DataPruneError(f"{run / STATE_FILE} is missing, but the run checkpointed epochs before (the store "
                             f"holds {held}); --resume cannot continue without it and deletes nothing: restore "
                             f"it, or start over with `{COMMAND_LINE[run.command]} --out {run.path} --force`")


@dataclass
class ScoreResult:
    run_dir: Path
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    """Epochs already finished when this process took over the run (0 for a fresh run)."""


def _clean_batches(data: Data, batch_size: int = 1024) -> Iterator[torch.Tensor]:
    """Every training sample's un-augmented input (B, C, H, W), in sample-index order."""
    if isinstance(data, FolderData):
        loader = data.loader(batch_size=batch_size, shuffle=False, augment=False)
    else:
        loader = InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std,
                                batch_size=batch_size, shuffle=False)
    return (x for x, _, _ in loader)


def evaluate_data(model: torch.nn.Module, data: Data) -> tuple[float, str]:
    """``(top-1 accuracy, split name)`` of ``model`` on the evaluation split: the IDX test
    files ("test"), or an image folder's val/ or test/ folder."""
    if isinstance(data, FolderData):
        loader = data.loader(batch_size=256, shuffle=False, augment=False, split="eval")
        return accuracy(model, ((x, y) for x, y, _ in loader)), str(data.eval_split)
    return evaluate(model, data.test_x, data.test_y, data.mean, data.std), "test"


def labels_digest(labels: torch.Tensor) -> str:
    """Hash of the training labels, recorded in ``config.json`` so a resumed run can tell
    that it trains on the same data."""
    return keepfile.labels_digest(labels.cpu().numpy())


def log_epoch(log: Log | None, what: str, epoch: int, epochs: int, row: dict[str, float]) -> None:
    if log:
        log(f"{what} epoch {epoch + 1}/{epochs}: {row['samples']} samples, loss {row['loss']:.4f}  train acc "
            f"{100 * row['train_accuracy']:.2f} %  {row['seconds']:.1f}s")


# --- dataprune record ----------------------------------------------------------------------------
def score_run(out: str | Path, data_spec: DataSpec, *, model: str = "small-cnn",
              cfg: TrainConfig | None = None, record_view: str = "clean",
              signals: tuple[str, ...] = ALL_SIGNALS + EXTRA_SIGNALS, force: bool = False,
              log: Log | None = None, data: Data | None = None, progress: bool = False,
              keep_history: str = "full", window: int = 10, device: str | None = None,
              compile: bool = False) -> ScoreResult:
    """Train ``model`` on the full training set while recording dynamics into ``out``.

    Writes the run folder of :mod:`~dataprune.train.rundir`: ``config.json``, ``dynamics/``
    (the store), ``log.jsonl``, ``state.pt`` after every epoch (for :func:`resume_score_run`),
    ``checkpoint.pt`` (final weights), ``features.npy`` / ``final_logits.npy`` (final model,
    clean view) and ``digests.json``; ``config.json`` says ``"finished": true`` once all is
    written. Image-folder datasets also get ``dynamics/file_list.txt``. ``keep_history="window"``
    records only what Dyn-Unc with ``window`` needs (see Recorder).

    Trains on ``device`` (default: CUDA when available, else the CPU; see
    :func:`~dataprune.train.device.resolve_device`), compiled with ``torch.compile`` when
    ``compile``. Under torch.distributed (``torchrun`` or ``dataprune record --nproc``; the
    group is joined from the environment) every rank trains a DistributedDataParallel model
    on its shard and only rank 0 writes anything.
    """
    from . import distributed as ddp
    cfg = cfg or TrainConfig()
    mode = HistoryMode.parse(keep_history, depth=2)
    check_score_settings(cfg, record_view, list(signals), mode.stored,  # before any file or data
                         None if mode.per_epoch else window)
    dev = resolve_device(device)
    check_precision(cfg.precision, dev)
    with ddp.process_group(dev) as (rank, world), claim_on_rank0(out, "score", force, rank, world) as run:
        return _score_run(run, data_spec, model=model, cfg=cfg, record_view=record_view, signals=signals,
                          log=log if rank == 0 else None, data=data, progress=progress and rank == 0,
                          keep_history=mode, window=window, rank=rank, world=world, device=dev,
                          compile=compile)


@contextlib.contextmanager
def claim_on_rank0(out: str | Path, command: str, force: bool, rank: int, world: int) -> Iterator[RunDir]:
    """The run folder ``out``, claimed (locked, refused when taken) by rank 0 only, the one
    rank that writes; a refusal there is raised on every rank (no rank hangs waiting)."""
    from . import distributed as ddp
    error, run = None, None
    claim = contextlib.ExitStack()
    if rank == 0:
        try:
            run = claim.enter_context(RunDir.claim(out, command, force=force))
        except Exception as e:  # noqa: BLE001  (re-raised below, on every rank)
            claim.close()
            error = e
    ddp.share_refusal(error, world)
    with claim:
        yield run or RunDir(out, command)


def _score_run(run: RunDir, data_spec: DataSpec, *, model: str, cfg: TrainConfig, record_view: str,
               signals: tuple[str, ...], log: Log | None, data: Data | None, progress: bool,
               keep_history: HistoryMode, window: int, rank: int, world: int, device: torch.device,
               compile: bool) -> ScoreResult:
    data_spec = data_spec.for_model(model)
    config_fields = dict(record_view=record_view, signals=list(signals), keep_history=keep_history.stored,
                         window=None if keep_history.per_epoch else window, world_size=world)
    data = data if data is not None else data_spec.load()
    config = run_config("score", data_spec, data, model, cfg, **config_fields)
    training = Training(data, model, cfg, record_view=record_view, rank=rank, world=world,  # fails before any file
                        device=device, compile=compile)
    if rank == 0:
        run.start(config)
        if log and isinstance(data, FolderData):
            log(f"image folder {data.root}: {len(data.train_y)} training images in {len(data.classes)} classes "
                f"at {data.image_size}x{data.image_size}, decoded by {data_spec.workers or 'the main'} "
                f"{'worker process(es)' if data_spec.workers else 'process'}")
    recorder = _new_recorder(run, config, data, rank)
    return _score_epochs(run, config, data, training, recorder, start=0, seconds_before=0.0, log=log,
                         progress=progress, rank=rank, world=world)


def _new_recorder(run: RunDir, config: RunConfig, data: Data, rank: int) -> Recorder:
    """The run's store ``RUN/dynamics`` (created by rank 0) and a Recorder writing it."""
    recorder = Recorder(len(data.train_y), run / STORE_DIR, data.num_classes, signals=config.signals,
                        epochs=config.train.epochs, view=config.record_view, labels=data.train_y.numpy(),
                        meta={"dataset": data.name, "model": config.model, "seed": config.train.seed},
                        keep_history=HistoryMode.from_stored(config.keep_history), window=config.window or 10)
    file_list = getattr(data, "file_list", None)
    if file_list is not None and rank == 0:
        from ..fileio import atomic_write_text
        from ..interop import FILE_LIST, format_file_list
        atomic_write_text(run / STORE_DIR / FILE_LIST, format_file_list(*file_list))
    return recorder


def resume_score_run(out: str | Path, *, log: Log | None = None, data: Data | None = None,
                     progress: bool = False, workers: int | None = None, device: str | None = None,
                     compile: bool = False) -> ScoreResult:
    """Continue the interrupted scoring run ``out`` from its last finished epoch.

    Everything (dataset, model, hyper-parameters, seed) comes from ``out/config.json``
    (refused if edited: its digest is in ``digests.json``); model, optimizer, schedule and
    every RNG state come from ``out/state.pt`` (refused if its digest does not match). Without
    a ``state.pt`` (a crash before the first epoch's checkpoint) the run restarts from epoch 0;
    a ``state.pt`` that was written and is now missing is refused, deleting nothing. An epoch
    the store recorded after that checkpoint (a crash between the two writes) is discarded,
    as are extra ``log.jsonl`` rows, so the finished run is identical to an uninterrupted one
    on the same machine and thread count. Single-process runs only. ``workers`` (image
    folders) overrides the run's decoding processes (the results do not depend on it);
    ``device`` and ``compile`` are as for :func:`score_run`.
    """
    with RunDir.reopen(out, "score") as (run, config):
        return _resume_score_run(run, config, log=log, data=data, progress=progress, workers=workers,
                                 device=device, compile=compile)


def _resume_score_run(run: RunDir, config: RunConfig, *, log: Log | None, data: Data | None, progress: bool,
                      workers: int | None, device: str | None, compile: bool) -> ScoreResult:
    cfg = config.train
    if config.finished:
        raise DataPruneError(f"scoring run {run.path} already finished all {cfg.epochs} epochs; nothing to resume")
    if config.world_size > 1:
        raise DataPruneError(f"scoring run {run.path} ran with {config.world_size} processes; --resume "
                             "supports single-process runs only (restart it with --force)")
    if not HistoryMode.from_stored(config.keep_history).per_epoch and run.has_state():
        raise DataPruneError(f"scoring run {run.path} records keep_history={config.keep_history!r}; --resume "
                             "supports full-history stores only (restart it with --force)")
    data = data if data is not None else DataSpec.of(config, workers).load()
    check_same_data(config, data, run.path)
    training = Training(data, config.model, cfg, record_view=config.record_view, device=device, compile=compile)
    if not (run / STATE_FILE).exists():
        refuse_lost_state(run)  # nothing to continue from: a new store, epoch 0
        if (run / STORE_DIR).exists():
            shutil.rmtree(run / STORE_DIR)
        run.prepare(0)
        recorder = _new_recorder(run, config, data, 0)
        if log:
            log(f"resuming scoring run {run.path}: no epoch finished yet, starting from epoch 0")
        return _score_epochs(run, config, data, training, recorder, start=0, seconds_before=0.0, log=log,
                             progress=progress, rank=0, world=1)
    state = run.load_state(config)
    restore(training, state, run / STATE_FILE)
    start, at = int(state["epoch"]), int(state["store_epochs"])
    if not 0 <= start <= cfg.epochs:
        raise DataPruneError(f"{run / STATE_FILE} says {start} epochs finished; expected 0..{cfg.epochs}")
    store = Dynamics.open(run / STORE_DIR)
    if store.num_samples != len(data.train_y):
        raise DataPruneError(f"store {store.path} holds N={store.num_samples} samples but the "
                             f"dataset has N={len(data.train_y)}")
    check_store_against_config(store, config, run.path)
    recorded = store.epochs
    del store
    recorder = Recorder.resume(run / STORE_DIR, epochs=at, fingerprint=str(state["store_fingerprint"]))
    recorder.load_state_dict(state.get("recorder", {}))
    run.prepare(start)  # refuses a symlinked log; the rows kept must be readable
    if log:
        note = (f"; discarded {recorded - at} epoch(s) the store recorded after that checkpoint"
                if recorded > at else "")
        log(f"resuming scoring run {run.path} after epoch {start} of {cfg.epochs} (from {STATE_FILE}){note}")
    return _score_epochs(run, config, data, training, recorder, start=start, seconds_before=float(state["seconds"]),
                         log=log, progress=progress, rank=0, world=1)


def restore(training: Training, state: dict[str, Any], path: Path) -> None:
    """Load a checkpointed ``state`` (model, optimizer, schedule, counters, RNG) into ``training``."""
    try:
        training.load_state_dict(state)
        set_rng_states(state["rng"])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as e:
        raise DataPruneError(f"{path} does not fit this run's model and optimizer "
                             f"({' '.join(str(e).split())[:200]})") from None


def check_store_against_config(store: Dynamics, config: RunConfig, run_dir: Path) -> None:
    """Refuse a store that does not hold what the run's ``config.json`` says it records:
    N, C, the signals (full history) and the training labels (O(N), from ``meta.json``)."""
    where = f"{run_dir / 'config.json'} records"
    for key in ("num_samples", "num_classes"):
        if getattr(config, key) != store.meta[key]:
            raise DataPruneError(f"store {store.path} holds {key}={store.meta[key]} but {where} "
                                 f"{getattr(config, key)}")
    if store.history.per_epoch and list(config.signals or store.signals) != store.signals:
        raise DataPruneError(f"store {store.path} lists signals {store.signals} but {where} "
                             f"{config.signals}; its meta.json was edited")
    stored = store.meta.get("digests", {}).get("labels")
    if config.train_labels_digest != stored:
        raise DataPruneError(f"the labels of store {store.path} differ from the training labels "
                             f"{where} (train_labels_digest); labels.npy or meta.json was replaced")


def _score_epochs(run: RunDir, config: RunConfig, data: Data, training: Training, recorder: Recorder, *,
                  start: int, seconds_before: float, log: Log | None, progress: bool, rank: int,
                  world: int) -> ScoreResult:
    """Epochs ``start..K-1`` of a scoring run, then the final outputs. After each epoch the
    store is written first (by the recorder), then the log row, then ``state.pt`` (only
    rank 0 writes; DDP keeps the ranks' weights equal)."""
    t0 = time.perf_counter()
    epochs = config.train.epochs
    for epoch in range(start, epochs):
        row = training.epoch(epoch, recorder=recorder, record_view=config.record_view, progress=progress)
        if rank == 0:
            run.append_log(row)
            log_epoch(log, "score", epoch, epochs, row)
            run.save_state(config, {**training.state_dict(), "epoch": epoch + 1,
                                    "store_epochs": recorder.recordings, "store_fingerprint": recorder.fingerprint,
                                    "recorder": recorder.state_dict(),
                                    "seconds": seconds_before + time.perf_counter() - t0})
    seconds = seconds_before + time.perf_counter() - t0
    recorder.close()
    if rank == 0:
        logits, feats = predict(training.net, _clean_batches(data))
        save_final_outputs(run.path, logits, feats, force=True)  # the run's own files (a crash may leave them)
        run.save_torch(CHECKPOINT_FILE, {"model": training.net.state_dict(), "model_name": config.model,
                                         "num_classes": data.num_classes, "epoch": epochs})
        run.finish(config, train_seconds=seconds)
    if world > 1:
        torch.distributed.barrier()
    return ScoreResult(run.path, seconds, run.read_log(), resumed_from=start)


# --- dataprune train (no run folder) -------------------------------------------------------------
def train_run(data_spec: DataSpec, *, model: str = "small-cnn", cfg: TrainConfig | None = None,
              subset: np.ndarray | None = None, log: Log | None = None,
              data: Data | None = None, progress: bool = False,
              evaluate_extra: Callable[[torch.nn.Module, Data], dict[str, Any]] | None = None,
              device: str | None = None, compile: bool = False) -> dict[str, Any]:
    """Train ``model`` on ``subset`` (sample indices; default all) and test it, through the
    same :class:`~.training.Training` as every run (so a full run here equals the full run of
    ``train --prune-at``'s lifecycle with the same seed), without a run folder.

    Returns metrics: ``test_accuracy`` (on the split named by ``eval_split``: IDX "test", an
    image folder's "val" or "test"), ``train_samples``, ``epochs``, ``seconds``,
    ``optimizer_steps``, ``sample_passes`` (samples forwarded and backwarded in all epochs),
    ``full_equivalent`` (``sample_passes / (epochs * N)``) and more; ``evaluate_extra(trained_model, data)`` may add its own
    (e.g. out-of-distribution detection). ``device`` and ``compile`` are as for :func:`score_run`.

    Under torch.distributed (``torchrun`` or ``dataprune train --nproc``; the group is joined
    from the environment) every rank trains a DistributedDataParallel model on its shard and
    evaluates it (the ranks' weights are equal); only rank 0 logs. The metrics count the
    samples of every rank.
    """
    from . import distributed as ddp
    cfg = cfg or TrainConfig()
    data = data if data is not None else data_spec.for_model(model).load()
    if isinstance(data, FolderData) and data.eval_split is None:  # fail before training, not after
        data.loader(batch_size=1, shuffle=False, augment=False, split="eval")
    dev = resolve_device(device)
    with ddp.process_group(dev) as (rank, world):
        log = log if rank == 0 else None
        training = Training(data, model, cfg, subset=subset, rank=rank, world=world, device=dev, compile=compile)
        t0 = time.perf_counter()
        for epoch in range(training.epochs):
            row = training.epoch(epoch, progress=progress and rank == 0)
            log_epoch(log, "train", epoch, training.epochs, row)
        seconds = time.perf_counter() - t0
        acc, split = evaluate_data(training.net, data)
        if log:
            log(f"evaluated on the {split} split ({len(data.test_y)} samples): accuracy {100 * acc:.2f} %")
        extra = evaluate_extra(training.net, data) if evaluate_extra is not None else {}
        return {**training.metrics(data, row, acc, split), "seconds": seconds, **extra}
