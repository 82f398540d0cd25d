"""One scoring run and one training run, end to end, as the CLI and benchmarks use them."""
from __future__ import annotations

import io
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import __version__
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, refuse_overwrite
from ..record import ALL_SIGNALS, EXTRA_SIGNALS, Recorder
from ..run_outputs import save_final_outputs
from .data import ImageData, InMemoryLoader, evaluate, load_dataset
from .loop import TrainConfig, predict, seed_everything, train
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


@dataclass
class ScoreResult:
    run_dir: Path
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _loader(data: ImageData, cfg: TrainConfig, model_name: str, indices: np.ndarray | None = None
            ) -> InMemoryLoader:
    return InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std, indices=indices,
                          batch_size=cfg.batch_size, shuffle=True, augment=model_name != "mlp",
                          seed=cfg.seed)


def _save_checkpoint(path: Path, model: torch.nn.Module, extra: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())


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
    loss/accuracy), ``out/checkpoint.pt`` (final weights), and ``out/features.npy`` /
    ``out/final_logits.npy`` (final model, clean view). Image-folder datasets also get
    ``out/dynamics/file_list.txt`` (``relative/path label`` per sample index).
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
                refuse_overwrite(out / "config.json", force)
                if out.exists() and force:
                    shutil.rmtree(out)
            except Exception as e:  # noqa: BLE001  (re-raised below, on every rank)
                error = e
        if world > 1:  # every rank fails together rather than hanging in a collective
            msg = [None if error is None else f"{type(error).__name__}: {error}"]
            torch.distributed.broadcast_object_list(msg, 0)
            if msg[0] is not None and error is None:
                from ..errors import DataPruneError
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
    config = {"command": "score", "dataset": data.name, "data_dir": str(data.data_dir),
              "limit": data_spec.limit, "num_samples": n, "num_classes": data.num_classes,
              "model": model, "record_view": record_view, "signals": list(signals),
              "keep_history": keep_history, "world_size": world,
              "train": cfg.to_dict(), "dataprune": __version__, "torch": torch.__version__,
              "python": platform.python_version()}
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
    recorder = Recorder(n, out / "dynamics", data.num_classes, signals=signals, epochs=cfg.epochs,
                        view=record_view, labels=data.train_y.numpy(),
                        meta={"dataset": data.name, "model": model, "seed": cfg.seed},
                        keep_history=keep_history, window=window)
    file_list = getattr(data, "file_list", None)
    if file_list is not None and rank == 0:
        from ..interop import FILE_LIST, format_file_list
        atomic_write_text(out / "dynamics" / FILE_LIST, format_file_list(*file_list))
    if world > 1:
        loader = ddp.ShardLoader(data.train_x, data.train_y, mean=data.mean, std=data.std,
                                 batch_size=cfg.batch_size, shuffle=True, augment=model != "mlp",
                                 seed=cfg.seed, rank=rank, world_size=world)
    else:
        loader = _loader(data, cfg, model)
    t0 = time.perf_counter()
    history = train(net, loader, cfg, recorder=recorder, record_view=record_view,
                    on_epoch_end=_epoch_logger(out / "log.jsonl", log, "score") if rank == 0 else None,
                    progress=progress, grad_sync=ddp.grad_sync if world > 1 else None)
    seconds = time.perf_counter() - t0
    recorder.close()
    if rank == 0:
        clean = InMemoryLoader(data.train_x, data.train_y, mean=data.mean, std=data.std,
                               batch_size=1024, shuffle=False)
        logits, feats = predict(net, (x for x, _, _ in clean))
        save_final_outputs(out, logits, feats)
        _save_checkpoint(out / "checkpoint.pt", net, {"model_name": model, "num_classes": data.num_classes,
                                                      "epoch": cfg.epochs})
        atomic_write_json(out / "config.json", {**config, "train_seconds": seconds})
    if world > 1:
        torch.distributed.barrier()
    return ScoreResult(out, seconds, history)


def train_run(data_spec: DataSpec, *, model: str = "small-cnn", cfg: TrainConfig | None = None,
              subset: np.ndarray | None = None, log: Log | None = None,
              data: ImageData | None = None, progress: bool = False,
              evaluate_extra: Callable[[torch.nn.Module, ImageData], dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """Train ``model`` on ``subset`` (sample indices; default all) and test it.

    Returns metrics: ``test_accuracy``, ``train_samples``, ``epochs``, ``seconds``,
    ``optimizer_steps`` and more; ``evaluate_extra(trained_model, data)`` may add its own
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
    return {"test_accuracy": acc, "train_samples": int(len(loader.indices)),
            "num_samples": int(len(data.train_y)), "epochs": cfg.epochs, "seconds": seconds,
            "optimizer_steps": cfg.epochs * len(loader),
            "dataset": data.name, "model": model, "seed": cfg.seed,
            "final_train_loss": history[-1]["loss"], "train": cfg.to_dict(), **extra}

