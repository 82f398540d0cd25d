"""One scoring run and one training run, end to end, as the CLI and benchmarks use them."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..errors import DataPruneError
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from ..record import ALL_SIGNALS, EXTRA_SIGNALS, Recorder
from ..run_outputs import save_final_outputs
from ..store import Dynamics
from .data import ImageData, InMemoryLoader, evaluate, load_dataset
from .loop import TrainConfig, make_optimizer, predict, seed_everything, train
from .models import build_model

Log = Callable[[str], None]


@dataclass
class DataSpec:
    """Which dataset to load: a registered name (or ``idx``), an optional directory and limit."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    limit: int | None = None
    image_size: int | None = None  # imagefolder only (default 32)

    def load(self) -> ImageData:
        return load_dataset(self.dataset, self.data_dir, self.limit, image_size=self.image_size)


#: Training state checkpointed after every epoch of a scoring run, for ``--resume``.
STATE_FILE = "state.pt"
STATE_FORMAT = "dataprune-score-state"


@dataclass
class ScoreResult:
    run_dir: Path
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    """Epochs already finished when this process took over the run (0 for a fresh run)."""


def _loader(data: ImageData, cfg: TrainConfig, model_name: str, indices: np.ndarray | None = None
            ) -> InMemoryLoader:
    return InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std, indices=indices,
                          batch_size=cfg.batch_size, shuffle=True, augment=model_name != "mlp",
                          seed=cfg.seed)


def _torch_save(path: Path, obj: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _save_checkpoint(path: Path, model: torch.nn.Module, extra: dict[str, Any]) -> None:
    _torch_save(path, {"model": model.state_dict(), **extra})


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


def labels_digest(labels: torch.Tensor) -> str:
    """Hash of the training labels, recorded in ``config.json`` so a resumed run can tell
    that it trains on the same data."""
    return hashlib.blake2b(labels.cpu().numpy().astype(np.int64).tobytes(), digest_size=16).hexdigest()


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
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if log:
            log(f"{what} epoch {epoch + 1}: loss {row['loss']:.4f}  train acc "
                f"{row['train_accuracy']:.4f}  {row['seconds']:.1f}s")
    return on_epoch_end


def score_run(out: str | os.PathLike, data_spec: DataSpec, *, model: str = "small-cnn",
              cfg: TrainConfig | None = None, record_view: str = "clean",
              signals: tuple[str, ...] = ALL_SIGNALS + EXTRA_SIGNALS, force: bool = False,
              log: Log | None = None, data: ImageData | None = None, progress: bool = False,
              keep_history: str = "full", window: int = 10) -> ScoreResult:
    """Train ``model`` on the full training set while recording dynamics into ``out``.

    Writes ``out/config.json``, ``out/dynamics/`` (the store), ``out/log.jsonl`` (per-epoch
    loss/accuracy), ``out/state.pt`` (model, optimizer, schedule and RNG state after the
    last finished epoch, for :func:`resume_score_run`), ``out/checkpoint.pt`` (final
    weights), and ``out/features.npy`` / ``out/final_logits.npy`` (final model, clean view).
    ``config.json`` says ``"finished": true`` once everything is written. Image-folder
    datasets also get ``out/dynamics/file_list.txt`` (``relative/path label`` per sample).
    ``keep_history="none"`` records only what Dyn-Unc with ``window`` needs (see Recorder).

    Under torch.distributed (``torchrun`` or ``dataprune score --nproc``; the group is
    joined from the environment) every rank trains on its shard with averaged gradients
    and only rank 0 writes anything.
    """
    from . import distributed as ddp
    cfg = cfg or TrainConfig()
    out = Path(out)
    rank, world, created = ddp.init_from_env()
    try:
        error = None
        if rank == 0:
            try:
                if (out / "config.json").exists() and not force:
                    _refuse_existing_run(out)
                if out.exists() and force:
                    shutil.rmtree(out)
            except Exception as e:  # noqa: BLE001  (re-raised below, on every rank)
                error = e
        if world > 1:  # every rank fails together rather than hanging in a collective
            msg = [None if error is None else f"{type(error).__name__}: {error}"]
            torch.distributed.broadcast_object_list(msg, 0)
            if msg[0] is not None and error is None:
                raise DataPruneError(f"rank 0 failed: {msg[0]}")
        if error is not None:
            raise error
        return _score_run(out, data_spec, model=model, cfg=cfg, record_view=record_view,
                          signals=signals, log=log if rank == 0 else None, data=data,
                          progress=progress and rank == 0, keep_history=keep_history,
                          window=window, rank=rank, world=world)
    finally:
        if created:
            torch.distributed.destroy_process_group()


def _score_run(out: Path, data_spec: DataSpec, *, model: str, cfg: TrainConfig, record_view: str,
               signals: tuple[str, ...], log: Log | None, data: ImageData | None, progress: bool,
               keep_history: str, window: int, rank: int, world: int) -> ScoreResult:
    from . import distributed as ddp
    data = data if data is not None else data_spec.load()
    n = len(data.train_y)
    config = {"command": "score", "dataset": data.name, "data_dir": str(Path(data.data_dir).resolve()),
              "limit": data_spec.limit, "image_size": data_spec.image_size, "num_samples": n,
              "num_classes": data.num_classes, "train_labels_digest": labels_digest(data.train_y),
              "model": model, "record_view": record_view, "signals": list(signals),
              "keep_history": keep_history, "world_size": world,
              "train": cfg.to_dict(), "threads": torch.get_num_threads(), "dataprune": __version__,
              "torch": torch.__version__, "python": platform.python_version(), "finished": False}
    if keep_history == "none":
        config["window"] = window
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", config)
    seed_everything(cfg.seed)
    net = build_model(model, data.num_classes, data.train_x.shape[1], data.train_x.shape[-1])
    if world > 1:
        net = net.to(ddp.device_for(rank))
        ddp.broadcast_model(net)
        loader = ddp.ShardLoader(data.train_x, data.train_y, mean=data.mean, std=data.std,
                                 batch_size=cfg.batch_size, shuffle=True, augment=model != "mlp",
                                 seed=cfg.seed, rank=rank, world_size=world)
    else:
        loader = _loader(data, cfg, model)
    optimizer, scheduler = make_optimizer(net, cfg, len(loader))
    recorder = Recorder(n, out / "dynamics", data.num_classes, signals=signals, epochs=cfg.epochs,
                        view=record_view, labels=data.train_y.numpy(),
                        meta={"dataset": data.name, "model": model, "seed": cfg.seed},
                        keep_history=keep_history, window=window)
    file_list = getattr(data, "file_list", None)
    if file_list is not None and rank == 0:
        from ..interop import FILE_LIST, format_file_list
        atomic_write_text(out / "dynamics" / FILE_LIST, format_file_list(*file_list))
    return _score_epochs(out, config, data, net, loader, optimizer, scheduler, recorder, cfg,
                         start=0, seconds_before=0.0, log=log, progress=progress, rank=rank, world=world)


def resume_score_run(out: str | os.PathLike, *, log: Log | None = None, data: ImageData | None = None,
                     progress: bool = False) -> ScoreResult:
    """Continue the interrupted scoring run ``out`` from its last finished epoch.

    Everything (dataset, model, hyper-parameters, seed) comes from ``out/config.json``;
    model, optimizer, schedule and RNG states come from ``out/state.pt`` (none: the run
    restarts from epoch 0). An epoch the store recorded after that checkpoint (a crash
    between the two writes) is discarded, as are extra ``log.jsonl`` rows, so the finished
    run is identical to an uninterrupted one on the same machine and thread count.
    Single-process runs only: a run started with several processes is refused.
    """
    out = Path(out)
    if not (out / "config.json").is_file():
        raise DataPruneError(f"no scoring run to resume at {out} (config.json missing); "
                             f"start one with `dataprune score --out {out}`")
    config = read_json(out / "config.json")
    if not isinstance(config, dict) or config.get("command") != "score" or "train" not in config:
        raise DataPruneError(f"{out / 'config.json'} does not describe a `dataprune score` run")
    cfg = TrainConfig(**config["train"])
    if _finished(config):
        raise DataPruneError(f"scoring run {out} already finished all {cfg.epochs} epochs; nothing to resume")
    if config.get("world_size", 1) > 1:
        raise DataPruneError(f"scoring run {out} ran with {config['world_size']} processes; --resume "
                             "supports single-process runs only (restart it with --force)")
    if config.get("keep_history", "full") != "full":
        raise DataPruneError(f"scoring run {out} records keep_history={config['keep_history']!r}; --resume "
                             "supports full-history stores only (restart it with --force)")
    spec = DataSpec(config["dataset"], config["data_dir"], config["limit"], config.get("image_size"))
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
    net = build_model(model, data.num_classes, data.train_x.shape[1], data.train_x.shape[-1])
    loader = _loader(data, cfg, model)
    optimizer, scheduler = make_optimizer(net, cfg, len(loader))
    start, store_epochs, fingerprint, seconds_before = 0, 0, None, 0.0
    state_path = out / STATE_FILE
    if state_path.exists():
        state = load_checkpoint(state_path)
        if state.get("format") != STATE_FORMAT:
            raise DataPruneError(f"{state_path} is not a dataprune scoring-run state")
        try:
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            if torch.cuda.is_available() and state["cuda_rng"]:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        except (KeyError, RuntimeError, ValueError) as e:
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
    recorded = store.epochs
    del store
    recorder = Recorder.resume(out / "dynamics", epochs=store_epochs, fingerprint=fingerprint)
    if state_path.exists():
        recorder.load_state_dict(state.get("recorder", {}))
    _truncate_lines(out / "log.jsonl", start)
    if log:
        note = (f"; discarded {recorded - store_epochs} epoch(s) the store recorded after that checkpoint"
                if recorded > store_epochs else "")
        log(f"resuming scoring run {out} after epoch {start} of {cfg.epochs} "
            f"({'from ' + STATE_FILE if start else 'no checkpoint yet: from the start'}){note}")
    return _score_epochs(out, config, data, net, loader, optimizer, scheduler, recorder, cfg,
                         start=start, seconds_before=seconds_before, log=log, progress=progress,
                         rank=0, world=1)


def _truncate_lines(path: Path, keep: int) -> None:
    """Atomically cut ``path`` to its first ``keep`` lines (an unfinished last line counts as one)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) > keep:
        atomic_write_text(path, "".join(line + "\n" for line in lines[:keep]))


def _save_state(path: Path, epochs_done: int, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, recorder: Recorder, seconds: float) -> None:
    """Checkpoint everything the next epoch depends on (tensors and primitives only)."""
    _torch_save(path, {
        "format": STATE_FORMAT, "version": 1, "epoch": epochs_done, "model": net.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "store_epochs": recorder.epoch, "store_fingerprint": recorder.fingerprint,
        "recorder": recorder.state_dict(), "train_seconds": seconds})


def _score_epochs(out: Path, config: dict[str, Any], data: ImageData, net: torch.nn.Module,
                  loader: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
                  recorder: Recorder, cfg: TrainConfig, *, start: int, seconds_before: float,
                  log: Log | None, progress: bool, rank: int, world: int) -> ScoreResult:
    """Epochs ``start..K-1`` of a scoring run, then the final outputs. After each epoch the
    store is written first (by the recorder), then the log row, then ``state.pt``
    (single-process runs; only rank 0 writes)."""
    from . import distributed as ddp
    log_row = _epoch_logger(out / "log.jsonl", log, "score")
    t0 = time.perf_counter()

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        log_row(epoch, row)
        if world == 1:
            _save_state(out / STATE_FILE, epoch + 1, net, optimizer, scheduler, recorder,
                        seconds_before + time.perf_counter() - t0)

    train(net, loader, cfg, recorder=recorder, record_view=config["record_view"], optimizer=optimizer,
          scheduler=scheduler, start_epoch=start, on_epoch_end=on_epoch_end if rank == 0 else None,
          progress=progress, grad_sync=ddp.grad_sync if world > 1 else None)
    seconds = seconds_before + time.perf_counter() - t0
    recorder.close()
    if rank == 0:
        clean = InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std,
                               batch_size=1024, shuffle=False)
        logits, feats = predict(net, (x for x, _, _ in clean))
        save_final_outputs(out, logits, feats, force=True)  # the run's own files (a crash may leave them)
        _save_checkpoint(out / "checkpoint.pt", net, {"model_name": config["model"],
                                                      "num_classes": data.num_classes, "epoch": cfg.epochs})
        atomic_write_json(out / "config.json", {**config, "train_seconds": seconds, "finished": True})
    if world > 1:
        torch.distributed.barrier()
    history = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    return ScoreResult(out, seconds, history, resumed_from=start)


def train_run(data_spec: DataSpec, *, model: str = "small-cnn", cfg: TrainConfig | None = None,
              subset: np.ndarray | None = None, log: Log | None = None,
              data: ImageData | None = None, progress: bool = False,
              evaluate_extra: Callable[[torch.nn.Module, ImageData], dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """Train ``model`` on ``subset`` (sample indices; default all) and test it.

    Returns metrics: ``test_accuracy``, ``train_samples``, ``epochs``, ``seconds``,
    ``optimizer_steps``, ``sample_passes`` (samples forwarded and backwarded in all epochs),
    ``full_equivalent`` (``sample_passes / (epochs * N)``) and more; ``evaluate_extra(trained_model, data)`` may add its own
    (e.g. out-of-distribution detection).
    """
    cfg = cfg or TrainConfig()
    data = data if data is not None else data_spec.load()
    seed_everything(cfg.seed)
    net = build_model(model, data.num_classes, data.train_x.shape[1], data.train_x.shape[-1])
    loader = _loader(data, cfg, model, subset)
    t0 = time.perf_counter()

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        if log:
            log(f"train epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.4f}  "
                f"train acc {row['train_accuracy']:.4f}  {row['seconds']:.1f}s")

    history = train(net, loader, cfg, on_epoch_end=on_epoch_end, progress=progress)
    seconds = time.perf_counter() - t0
    acc = evaluate(net, data.test_x, data.test_y, data.mean, data.std)
    extra = evaluate_extra(net, data) if evaluate_extra is not None else {}
    passes = int(sum(row["samples"] for row in history))
    return {"test_accuracy": acc, "train_samples": int(len(loader.indices)),
            "num_samples": int(len(data.train_y)), "epochs": cfg.epochs, "seconds": seconds,
            "sample_passes": passes, "full_equivalent": passes / (cfg.epochs * len(data.train_y)),
            "optimizer_steps": cfg.epochs * len(loader),
            "dataset": data.name, "model": model, "seed": cfg.seed,
            "final_train_loss": history[-1]["loss"], "train": cfg.to_dict(), **extra}

