"""One scoring run and one training run, end to end, as the CLI and benchmarks use them."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import pickle
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .. import __version__, keepfile
from ..errors import DataPruneError
from ..fileio import (LOCK_FILE, atomic_write_bytes, atomic_write_json, atomic_write_text, clear_for_force,
                      exclusive_lock, read_json, remove_stale_temps)
from ..record import ALL_SIGNALS, EXTRA_SIGNALS, Recorder
from ..run_outputs import is_run_dir, save_final_outputs
from ..store import Dynamics
from .data import ImageData, InMemoryLoader, accuracy, evaluate, load_dataset
from .device import check_precision, prepare_model, resolve_device
from .imagefolder import DEFAULT_IMAGE_SIZE, FolderData
from .loop import TrainConfig, make_optimizer, predict, seed_everything, train
from .models import build_model, model_image_size

Log = Callable[[str], None]
Data = ImageData | FolderData
"""In-memory IDX data or a streamed image folder."""


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


#: Training state checkpointed after every epoch of a scoring run, for ``--resume``.
STATE_FILE = "state.pt"
STATE_FORMAT = "dataprune-score-state"
#: who holds a run directory's lock (see :func:`~dataprune.fileio.exclusive_lock`)
RUN_USER = "`dataprune score` process"


@dataclass
class ScoreResult:
    run_dir: Path
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    """Epochs already finished when this process took over the run (0 for a fresh run)."""


def run_loader(data: Data, cfg: TrainConfig, model_name: str, indices: np.ndarray | None = None, *,
            record_view: str | None = None, rank: int = 0, world: int = 1) -> Any:
    """The training batches of a run (augmented unless the model is ``mlp``): in memory, or
    decoded by workers for an image folder (with the clean view when ``record_view="clean"``);
    this rank's shard when ``world`` > 1."""
    augment = model_name != "mlp"
    if isinstance(data, FolderData):
        return data.loader(indices, batch_size=cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed,
                           with_clean=record_view == "clean", rank=rank, world_size=world)
    kw = dict(mean=data.mean, std=data.std, indices=indices, batch_size=cfg.batch_size, shuffle=True,
              augment=augment, seed=cfg.seed, rank=rank, world_size=world)
    return InMemoryLoader(data.train_x, data.train_y, **kw)


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


def atomic_torch_save(path: Path, obj: dict[str, Any]) -> None:
    """``torch.save(obj)`` to ``path`` through a temp file and a rename (crash-safe)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _save_checkpoint(path: Path, model: torch.nn.Module, extra: dict[str, Any]) -> None:
    atomic_torch_save(path, {"model": model.state_dict(), **extra})


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint or training state written by dataprune (tensors and primitives only,
    ``torch.load(weights_only=True)``), with a one-line error on a missing or corrupted file."""
    path = Path(path)
    if not path.is_file():
        raise DataPruneError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise DataPruneError(f"checkpoint {path} is truncated or corrupted ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise DataPruneError(f"checkpoint {path} is not a dataprune checkpoint (no 'model' entry)")
    return obj


#: config.json entries a resumed run reads, with the types they must have
CONFIG_TYPES: dict[str, Any] = {"dataset": str, "data_dir": str, "limit": (int, type(None)),
                                "image_size": (int, type(None)), "num_samples": int, "model": str,
                                "record_view": str, "train": dict}
#: state.pt entries, with their types
STATE_TYPES: dict[str, Any] = {"epoch": int, "store_epochs": int, "store_fingerprint": str,
                               "train_seconds": (int, float), "model": dict, "optimizer": dict,
                               "scheduler": dict, "torch_rng": torch.Tensor, "cuda_rng": list}


def _check_entries(path: Path, obj: dict[str, Any], types: dict[str, Any], what: str) -> None:
    """One-line error unless every key of ``types`` is in ``obj`` with that type (no bools)."""
    for key, kind in types.items():
        if key not in obj:
            raise DataPruneError(f"{path} lacks the entry {key!r}; it is not a complete {what}")
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise DataPruneError(f"{path} has {key}={' '.join(repr(value).split())[:60]}; expected {names}")


def check_config(path: Path, config: Any) -> TrainConfig:
    """Validate a scoring run's ``config.json`` (read from ``path``); returns its TrainConfig.
    Unknown top-level keys are ignored; unknown training settings are refused."""
    if not isinstance(config, dict) or config.get("command") != "score":
        raise DataPruneError(f"{path} does not describe a `dataprune score` run")
    _check_entries(path, {"image_size": None, **config}, CONFIG_TYPES, "scoring-run config")
    known = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(config["train"]) - set(known))
    if unknown:
        raise DataPruneError(f"{path} has unknown training setting(s) {unknown} under 'train'; "
                             f"expected only {sorted(known)}")
    _check_entries(path, {**known, **config["train"]},
                   {k: type(v) if isinstance(v, (int, str)) else (int, float) for k, v in known.items()},
                   "scoring-run config")
    return TrainConfig(**config["train"])


def read_log(path: Path, lines: int | None = None) -> list[dict[str, Any]]:
    """The per-epoch rows of a run's ``log.jsonl`` (the first ``lines`` of them), with a
    one-line error on a row that is not a JSON object."""
    if not path.exists():
        return []
    rows = []
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(text[:lines], 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise DataPruneError(f"{path} line {i} is {line[:40]!r}; expected one JSON object per "
                                 "finished epoch (repair or delete the file)")
        rows.append(row)
    return rows


def labels_digest(labels: torch.Tensor) -> str:
    """Hash of the training labels, recorded in ``config.json`` so a resumed run can tell
    that it trains on the same data."""
    return keepfile.labels_digest(labels.cpu().numpy())


def _finished(config: dict[str, Any]) -> bool:
    return bool(config.get("finished", "train_seconds" in config))


def _refuse_existing_run(out: Path) -> None:
    try:
        config = read_json(out / "config.json")
    except DataPruneError:
        config = None
    if isinstance(config, dict) and config.get("command") == "score" and not _finished(config):
        raise DataPruneError(f"{out} already exists and holds an unfinished scoring run; continue it with "
                             f"`dataprune score --resume {out}`, or pass --force to start over")
    raise DataPruneError(f"{out / 'config.json'} already exists; pass --force (force=True) to overwrite it")


def _epoch_logger(log_path: Path, log: Log | None, what: str) -> Callable[[int, dict[str, float]], None]:
    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with open(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if log:
            log(f"{what} epoch {epoch + 1}: loss {row['loss']:.4f}  train acc "
                f"{100 * row['train_accuracy']:.2f} %  {row['seconds']:.1f}s")
    return on_epoch_end


def score_run(out: str | os.PathLike, data_spec: DataSpec, *, model: str = "small-cnn",
              cfg: TrainConfig | None = None, record_view: str = "clean",
              signals: tuple[str, ...] = ALL_SIGNALS + EXTRA_SIGNALS, force: bool = False,
              log: Log | None = None, data: Data | None = None, progress: bool = False,
              keep_history: str = "full", window: int = 10, device: str | None = None,
              compile: bool = False) -> ScoreResult:
    """Train ``model`` on the full training set while recording dynamics into ``out``.

    Writes ``out/config.json``, ``out/dynamics/`` (the store), ``out/log.jsonl`` (per-epoch
    loss/accuracy), ``out/state.pt`` (model, optimizer, schedule and RNG state after the
    last finished epoch, for :func:`resume_score_run`), ``out/checkpoint.pt`` (final
    weights), and ``out/features.npy`` / ``out/final_logits.npy`` (final model, clean view).
    ``config.json`` says ``"finished": true`` once everything is written. Image-folder
    datasets also get ``out/dynamics/file_list.txt`` (``relative/path label`` per sample).
    ``keep_history="none"`` records only what Dyn-Unc with ``window`` needs (see Recorder).

    Trains on ``device`` (default: CUDA when available, else the CPU; see
    :func:`~dataprune.train.device.resolve_device`), compiled with ``torch.compile`` when
    ``compile``. Under torch.distributed (``torchrun`` or ``dataprune score --nproc``; the
    group is joined from the environment) every rank trains a DistributedDataParallel model
    on its shard and only rank 0 writes anything.
    """
    from . import distributed as ddp
    cfg = cfg or TrainConfig()
    out = Path(out)
    dev = resolve_device(device)
    check_precision(cfg.precision, dev)
    rank, world, created = ddp.init_from_env(dev)
    try:
        error = None
        lock = contextlib.ExitStack()
        if rank == 0:
            try:
                lock.enter_context(exclusive_lock(out, RUN_USER))
                if (out / "config.json").exists() and not force:
                    _refuse_existing_run(out)
                if force:
                    clear_for_force(out, is_run_dir, "dataprune scoring run", keep=[LOCK_FILE])
            except Exception as e:  # noqa: BLE001  (re-raised below, on every rank)
                lock.close()
                error = e
        if world > 1:  # every rank refuses rank 0's refusal rather than hanging in a collective
            msg = [None if error is None else str(error)]
            torch.distributed.broadcast_object_list(msg, 0)
            if msg[0] is not None and error is None:
                raise DataPruneError(msg[0])
        if error is not None:
            raise error
        with lock:
            return _score_run(out, data_spec, model=model, cfg=cfg, record_view=record_view,
                              signals=signals, log=log if rank == 0 else None, data=data,
                              progress=progress and rank == 0, keep_history=keep_history,
                              window=window, rank=rank, world=world, device=dev, compile=compile)
    finally:
        if created:
            torch.distributed.destroy_process_group()


def _score_run(out: Path, data_spec: DataSpec, *, model: str, cfg: TrainConfig, record_view: str,
               signals: tuple[str, ...], log: Log | None, data: Data | None, progress: bool,
               keep_history: str, window: int, rank: int, world: int, device: torch.device,
               compile: bool) -> ScoreResult:
    data_spec = data_spec.for_model(model)
    data = data if data is not None else data_spec.load()
    n = len(data.train_y)
    config = {"command": "score", "dataset": data.name, "data_dir": str(Path(data.data_dir).resolve()),
              "limit": data_spec.limit, "image_size": data.image_size, "workers": data_spec.workers,
              "num_samples": n,
              "num_classes": data.num_classes, "train_labels_digest": labels_digest(data.train_y),
              "model": model, "record_view": record_view, "signals": list(signals),
              "keep_history": keep_history, "world_size": world, "device": device.type,
              "train": cfg.to_dict(), "threads": torch.get_num_threads(), "dataprune": __version__,
              "torch": torch.__version__, "python": platform.python_version(), "finished": False}
    if keep_history == "none":
        config["window"] = window
    seed_everything(cfg.seed)
    net = build_model(model, data.num_classes, data.in_channels, data.image_size)  # fails before any file
    if rank == 0:
        start_run_files(out, 0)
        atomic_write_json(out / "config.json", config)
        if log and isinstance(data, FolderData):
            log(f"image folder {data.root}: {n} training images in {len(data.classes)} classes at "
                f"{data.image_size}x{data.image_size}, decoded by {data_spec.workers or 'the main'} "
                f"{'worker process(es)' if data_spec.workers else 'process'}")
    trained = prepare_model(net, device, world_size=world, compile=compile)
    loader = run_loader(data, cfg, model, record_view=record_view, rank=rank, world=world)
    optimizer, scheduler = make_optimizer(net, cfg, len(loader))
    recorder = _new_recorder(out, config, data, cfg, rank)
    return _score_epochs(out, config, data, net, loader, optimizer, scheduler, recorder, cfg,
                         start=0, seconds_before=0.0, log=log, progress=progress, rank=rank, world=world,
                         trained=trained)


def _new_recorder(out: Path, config: dict[str, Any], data: Data, cfg: TrainConfig, rank: int) -> Recorder:
    """The run's store ``out/dynamics`` (created by rank 0) and a Recorder writing it."""
    recorder = Recorder(len(data.train_y), out / "dynamics", data.num_classes, signals=config["signals"],
                        epochs=cfg.epochs, view=config["record_view"], labels=data.train_y.numpy(),
                        meta={"dataset": data.name, "model": config["model"], "seed": cfg.seed},
                        keep_history=config.get("keep_history", "full"), window=config.get("window", 10))
    file_list = getattr(data, "file_list", None)
    if file_list is not None and rank == 0:
        from ..interop import FILE_LIST, format_file_list
        atomic_write_text(out / "dynamics" / FILE_LIST, format_file_list(*file_list))
    return recorder


def resume_score_run(out: str | os.PathLike, *, log: Log | None = None, data: Data | None = None,
                     progress: bool = False, workers: int | None = None, device: str | None = None,
                     compile: bool = False) -> ScoreResult:
    """Continue the interrupted scoring run ``out`` from its last finished epoch.

    Everything (dataset, model, hyper-parameters, seed) comes from ``out/config.json``;
    model, optimizer, schedule and RNG states come from ``out/state.pt``; without one (a
    crash before the first epoch finished, even before or while the store was created) the
    run restarts from epoch 0 with a new store. An epoch the store recorded after that checkpoint (a crash
    between the two writes) is discarded, as are extra ``log.jsonl`` rows, so the finished
    run is identical to an uninterrupted one on the same machine and thread count.
    Single-process runs only: a run started with several processes is refused. ``workers``
    (image folders) overrides the run's decoding processes (the results do not depend on it);
    ``device`` and ``compile`` are as for :func:`score_run`.
    """
    out = Path(out)
    if not (out / "config.json").is_file():
        raise DataPruneError(f"no scoring run to resume at {out} (config.json missing); "
                             f"start one with `dataprune score --out {out}`")
    with exclusive_lock(out, RUN_USER):
        return _resume_score_run(out, log=log, data=data, progress=progress, workers=workers,
                                 device=resolve_device(device), compile=compile)


def _resume_score_run(out: Path, *, log: Log | None, data: Data | None, progress: bool,
                      workers: int | None, device: torch.device, compile: bool) -> ScoreResult:
    config = read_json(out / "config.json")
    cfg = check_config(out / "config.json", config)
    check_precision(cfg.precision, device)
    if _finished(config):
        raise DataPruneError(f"scoring run {out} already finished all {cfg.epochs} epochs; nothing to resume")
    if config.get("world_size", 1) > 1:
        raise DataPruneError(f"scoring run {out} ran with {config['world_size']} processes; --resume "
                             "supports single-process runs only (restart it with --force)")
    state_path = out / STATE_FILE
    if config.get("keep_history", "full") != "full" and state_path.exists():
        raise DataPruneError(f"scoring run {out} records keep_history={config['keep_history']!r}; --resume "
                             "supports full-history stores only (restart it with --force)")
    spec = DataSpec(config["dataset"], config["data_dir"], config["limit"], config.get("image_size"),
                    workers=config.get("workers", 0) if workers is None else workers)
    data = data if data is not None else spec.load()
    n = len(data.train_y)
    if n != config["num_samples"]:
        raise DataPruneError(f"dataset {config['dataset']!r} at {config['data_dir']} now has N={n} training "
                             f"samples, but the run {out} was started with N={config['num_samples']}")
    if config.get("train_labels_digest", labels_digest(data.train_y)) != labels_digest(data.train_y):
        raise DataPruneError(f"the training labels of dataset {config['dataset']!r} at {config['data_dir']} "
                             f"differ from those the run {out} was started with; was the dataset replaced?")
    model = config["model"]
    seed_everything(cfg.seed)
    net = build_model(model, data.num_classes, data.in_channels, data.image_size)
    trained = prepare_model(net, device, compile=compile)
    loader = run_loader(data, cfg, model, record_view=config["record_view"])
    optimizer, scheduler = make_optimizer(net, cfg, len(loader))
    if not state_path.exists():  # nothing to continue from: a new store, epoch 0
        if (out / "dynamics").exists():
            shutil.rmtree(out / "dynamics")
        recorder = _new_recorder(out, config, data, cfg, 0)
        start_run_files(out, 0)
        if log:
            log(f"resuming scoring run {out}: no epoch finished yet, starting from epoch 0")
        return _score_epochs(out, config, data, net, loader, optimizer, scheduler, recorder, cfg,
                             start=0, seconds_before=0.0, log=log, progress=progress, rank=0, world=1,
                             trained=trained)
    state = load_checkpoint(state_path)
    if state.get("format") != STATE_FORMAT:
        raise DataPruneError(f"{state_path} is not a dataprune scoring-run state")
    _check_entries(state_path, state, STATE_TYPES, "scoring-run state")
    try:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise DataPruneError(f"{state_path} does not fit this run's model and optimizer "
                             f"({' '.join(str(e).split())[:200]})") from None
    start, store_epochs = int(state["epoch"]), int(state["store_epochs"])
    fingerprint, seconds_before = str(state["store_fingerprint"]), float(state["train_seconds"])
    if not 0 <= start <= cfg.epochs:
        raise DataPruneError(f"{state_path} says {start} epochs finished; expected 0..{cfg.epochs}")
    store = Dynamics.open(out / "dynamics")
    if store.num_samples != n:
        raise DataPruneError(f"store {store.path} holds N={store.num_samples} samples but the "
                             f"dataset has N={n}")
    check_store_against_config(store, config, out)
    recorded = store.epochs
    del store
    recorder = Recorder.resume(out / "dynamics", epochs=store_epochs, fingerprint=fingerprint)
    recorder.load_state_dict(state.get("recorder", {}))
    start_run_files(out, start)  # refuses a symlinked log before reading it
    read_log(out / "log.jsonl", start)  # the rows kept must be readable before any training
    if log:
        note = (f"; discarded {recorded - store_epochs} epoch(s) the store recorded after that checkpoint"
                if recorded > store_epochs else "")
        log(f"resuming scoring run {out} after epoch {start} of {cfg.epochs} (from {STATE_FILE}){note}")
    return _score_epochs(out, config, data, net, loader, optimizer, scheduler, recorder, cfg,
                         start=start, seconds_before=seconds_before, log=log, progress=progress,
                         rank=0, world=1, trained=trained)


def check_store_against_config(store: Dynamics, config: dict[str, Any], run_dir: Path) -> None:
    """Refuse a store that does not hold what the run's ``config.json`` says it records:
    N, C, the signals (full history) and the training labels (O(N), from ``meta.json``)."""
    where = f"{run_dir / 'config.json'} records"
    for key in ("num_samples", "num_classes"):
        if config.get(key) is not None and config[key] != store.meta[key]:
            raise DataPruneError(f"store {store.path} holds {key}={store.meta[key]} but {where} {config[key]}")
    if store.keep_history == "full" and list(config.get("signals", store.signals)) != store.signals:
        raise DataPruneError(f"store {store.path} lists signals {store.signals} but {where} "
                             f"{config['signals']}; its meta.json was edited")
    stored = store.meta.get("digests", {}).get("labels")
    if config.get("train_labels_digest") not in (None, stored):
        raise DataPruneError(f"the labels of store {store.path} differ from the training labels "
                             f"{where} (train_labels_digest); labels.npy or meta.json was replaced")


#: files of a run directory (and of its store) written with a temp name and a rename; a
#: crash can leave ``.<name>.XXXXXXXX.tmp`` behind, removed when the run is next started
ATOMIC_FILES = {"": ("config.json", STATE_FILE, "checkpoint.pt", "log.jsonl", "features.npy",
                     "final_logits.npy"), "dynamics": ("meta.json", "file_list.txt")}


def start_run_files(out: Path, log_rows: int) -> None:
    """Remove temp files a crash left, and cut ``log.jsonl`` to its first ``log_rows`` rows
    (0: a fresh run starts its own log). A symbolic link there is refused, never followed."""
    for sub, names in ATOMIC_FILES.items():
        remove_stale_temps(out / sub, names)
    path = out / "log.jsonl"
    if path.is_symlink():
        raise DataPruneError(f"{path} is a symbolic link; refusing to write the run's log through it "
                             "(remove it)")
    if path.exists():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) > log_rows:  # an unfinished last line counts as one
            atomic_write_text(path, "".join(line + "\n" for line in lines[:log_rows]))


def _save_state(path: Path, epochs_done: int, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, recorder: Recorder, seconds: float) -> None:
    """Checkpoint everything the next epoch depends on (tensors and primitives only)."""
    atomic_torch_save(path, {
        "format": STATE_FORMAT, "version": 1, "epoch": epochs_done, "model": net.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "store_epochs": recorder.epoch, "store_fingerprint": recorder.fingerprint,
        "recorder": recorder.state_dict(), "train_seconds": seconds})


def _score_epochs(out: Path, config: dict[str, Any], data: Data, net: torch.nn.Module,
                  loader: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
                  recorder: Recorder, cfg: TrainConfig, *, start: int, seconds_before: float,
                  log: Log | None, progress: bool, rank: int, world: int,
                  trained: torch.nn.Module) -> ScoreResult:
    """Epochs ``start..K-1`` of a scoring run, training ``trained`` (``net`` itself, or its
    DDP / compiled wrapper), then the final outputs. After each epoch the store is written
    first (by the recorder), then the log row, then ``state.pt`` (only rank 0 writes)."""
    log_row = _epoch_logger(out / "log.jsonl", log, "score")
    t0 = time.perf_counter()

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        log_row(epoch, row)
        _save_state(out / STATE_FILE, epoch + 1, net, optimizer, scheduler, recorder,
                    seconds_before + time.perf_counter() - t0)  # rank 0's (DDP keeps ranks' weights equal)

    train(trained, loader, cfg, recorder=recorder, record_view=config["record_view"], optimizer=optimizer,
          scheduler=scheduler, start_epoch=start, on_epoch_end=on_epoch_end if rank == 0 else None,
          progress=progress)
    seconds = seconds_before + time.perf_counter() - t0
    recorder.close()
    if rank == 0:
        logits, feats = predict(net, _clean_batches(data))
        save_final_outputs(out, logits, feats, force=True)  # the run's own files (a crash may leave them)
        _save_checkpoint(out / "checkpoint.pt", net, {"model_name": config["model"],
                                                      "num_classes": data.num_classes, "epoch": cfg.epochs})
        atomic_write_json(out / "config.json", {**config, "train_seconds": seconds, "finished": True})
    if world > 1:
        torch.distributed.barrier()
    history = read_log(out / "log.jsonl")
    return ScoreResult(out, seconds, history, resumed_from=start)


def train_run(data_spec: DataSpec, *, model: str = "small-cnn", cfg: TrainConfig | None = None,
              subset: np.ndarray | None = None, log: Log | None = None,
              data: Data | None = None, progress: bool = False,
              evaluate_extra: Callable[[torch.nn.Module, Data], dict[str, Any]] | None = None,
              device: str | None = None, compile: bool = False) -> dict[str, Any]:
    """Train ``model`` on ``subset`` (sample indices; default all) and test it.

    Returns metrics: ``test_accuracy`` (on the split named by ``eval_split``: IDX "test", an
    image folder's "val" or "test"), ``train_samples``, ``epochs``, ``seconds``,
    ``optimizer_steps``, ``sample_passes`` (samples forwarded and backwarded in all epochs),
    ``full_equivalent`` (``sample_passes / (epochs * N)``) and more; ``evaluate_extra(trained_model, data)`` may add its own
    (e.g. out-of-distribution detection). ``device`` and ``compile`` are as for :func:`score_run`.
    """
    cfg = cfg or TrainConfig()
    dev = resolve_device(device)
    check_precision(cfg.precision, dev)
    data = data if data is not None else data_spec.for_model(model).load()
    if isinstance(data, FolderData) and data.eval_split is None:  # fail before training, not after
        data.loader(batch_size=1, shuffle=False, augment=False, split="eval")
    seed_everything(cfg.seed)
    net = build_model(model, data.num_classes, data.in_channels, data.image_size)
    trained = prepare_model(net, dev, compile=compile)
    loader = run_loader(data, cfg, model, subset)
    t0 = time.perf_counter()

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        if log:
            log(f"train epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.4f}  "
                f"train acc {100 * row['train_accuracy']:.2f} %  {row['seconds']:.1f}s")

    history = train(trained, loader, cfg, on_epoch_end=on_epoch_end, progress=progress)
    seconds = time.perf_counter() - t0
    acc, split = evaluate_data(net, data)
    if log:
        log(f"evaluated on the {split} split ({len(data.test_y)} samples): accuracy {acc:.4f}")
    extra = evaluate_extra(net, data) if evaluate_extra is not None else {}
    passes = int(sum(row["samples"] for row in history))
    return {"test_accuracy": acc, "eval_split": split, "image_size": data.image_size,
            "train_samples": int(len(loader.indices)),
            "num_samples": int(len(data.train_y)), "epochs": cfg.epochs, "seconds": seconds,
            "sample_passes": passes, "full_equivalent": passes / (cfg.epochs * len(data.train_y)),
            "optimizer_steps": cfg.epochs * len(loader),
            "dataset": data.name, "model": model, "seed": cfg.seed,
            "final_train_loss": history[-1]["loss"], "train": cfg.to_dict(), **extra}

