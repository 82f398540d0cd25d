"""The reference training loop: SGD + warm-up/cosine (:mod:`.schedule`), optionally recording dynamics.

Read top to bottom: build the optimizer and schedule, then per epoch iterate batches of
``(x, y, idx)``, step, record, and log.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..errors import DataPruneError
from ..record import Recorder
from .schedule import ProgressSchedule

VIEWS = ("clean", "train")


class BatchSource(Protocol):
    """What the loop needs from a loader: epochs of ``(x, y, idx)`` and un-augmented views."""

    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterable[tuple[Tensor, Tensor, Tensor]]: ...
    def __len__(self) -> int: ...
    def clean(self, idx: Tensor) -> Tensor: ...


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (the defaults suit small-cnn on 28x28 images)."""

    epochs: int = 15
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise DataPruneError(f"epochs={self.epochs}; expected at least 1")
        if self.batch_size < 1:
            raise DataPruneError(f"batch_size={self.batch_size}; expected at least 1")
        if not self.lr > 0:
            raise DataPruneError(f"lr={self.lr}; expected a positive learning rate")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int, *, steps: int | None = None
                   ) -> tuple[torch.optim.Optimizer, ProgressSchedule]:
    """SGD with Nesterov momentum (no weight decay on biases and norms), and the run's
    warm-up/cosine :class:`~dataprune.train.schedule.ProgressSchedule` over ``cfg.epochs``
    epochs of ``steps_per_epoch`` steps, or compressed into ``steps`` steps (a budget run):
    the one schedule of every dataprune training."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return optimizer, ProgressSchedule.for_run(optimizer, cfg.epochs, cfg.warmup_epochs,
                                               steps_per_epoch=steps_per_epoch, steps=steps)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) for repeatable initialisation."""
    torch.manual_seed(seed)


SampleLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(logits (B, C), targets (B,), sample indices (B,)) -> scalar loss``."""


def record_points(batches: int, record_every: float) -> set[int]:
    """Batch counts after which a recording ends within an epoch of ``batches`` batches:
    ``record_every`` = 1/m splits the epoch into m near-equal parts (e.g. 0.5 -> 2)."""
    m = round(1 / record_every)
    return {math.ceil(i * batches / m) for i in range(1, m + 1)}


def check_record_every(record_every: float) -> int:
    """Recordings per epoch for ``record_every`` (1, 0.5, 0.25, ... = 1/m); raises otherwise."""
    ok = isinstance(record_every, (int, float)) and 0 < record_every <= 1
    m = round(1 / record_every) if ok else 0
    if not ok or abs(m * record_every - 1) > 1e-6:
        raise DataPruneError(f"record_every={record_every!r}; expected 1/m of an epoch for an integer "
                             f"m >= 1 (1, 0.5, 0.25, ...)")
    return m


def train(model: nn.Module, loader: BatchSource, cfg: TrainConfig, *,
          recorder: Recorder | None = None, record_view: str = "clean",
          optimizer: torch.optim.Optimizer | None = None,
          scheduler: torch.optim.lr_scheduler.LRScheduler | ProgressSchedule | None = None,
          start_epoch: int = 0, stop_epoch: int | None = None, progress: bool = False,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
          grad_sync: Callable[[nn.Module], None] | None = None,
          sample_loss: SampleLoss | None = None, record_every: float = 1.0) -> list[dict[str, float]]:
    """Train ``model`` for epochs ``start_epoch..stop_epoch-1`` (default ``cfg.epochs``);
    returns one log row per epoch (``samples``: samples forwarded and backwarded in it).

    With a ``recorder``, every batch is recorded: ``record_view="train"`` records the
    training forward's logits (free); ``"clean"`` runs an extra no-grad forward of the
    un-augmented batch with the model in eval mode (as the paper's official code).
    ``on_epoch_end(epoch, row)`` runs after the recorder has written the epoch.
    ``progress`` shows a per-epoch progress bar when stderr is a terminal.
    ``grad_sync(model)`` runs between backward and step (data-parallel gradient averaging).
    ``sample_loss`` replaces the mean cross-entropy (e.g. InfoBatch's re-weighted loss).
    ``record_every`` = 1/m ends m recordings per epoch (each holds the samples of its part
    of the epoch; unseen samples are NaN there).
    """
    if record_view not in VIEWS:
        raise DataPruneError(f"record_view={record_view!r}; expected one of {VIEWS}")
    if optimizer is None or scheduler is None:
        optimizer, scheduler = make_optimizer(model, cfg, len(loader))
    device = next(model.parameters()).device
    with_features = recorder is not None and "grand" in recorder.signals
    check_record_every(record_every)
    history = []
    for epoch in range(start_epoch, cfg.epochs if stop_epoch is None else stop_epoch):
        loader.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen, batch = 0, 0
        ends = record_points(len(loader), record_every) if recorder is not None else set()
        for x, y, idx in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                              disable=None if progress else True):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if recorder is not None and record_view == "clean":
                record_clean(model, loader, recorder, idx, y)
            logits, h = forward(model, x, with_features)
            loss = nn.functional.cross_entropy(logits, y) if sample_loss is None else sample_loss(logits, y, idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_sync is not None:
                grad_sync(model)
            optimizer.step()
            scheduler.step()
            if recorder is not None and record_view == "train":
                recorder.update(idx, logits, y, features=h)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen, batch = seen + len(y), batch + 1
            if batch in ends and batch < len(loader):
                recorder.end_epoch()
        if recorder is not None:
            recorder.end_epoch()
        row = {"epoch": epoch, "loss": loss_sum.item() / max(seen, 1), "samples": seen,
               "train_accuracy": correct.item() / max(seen, 1),
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        history.append(row)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    return history


def forward(model: nn.Module, x: Tensor, with_features: bool) -> tuple[Tensor, Tensor | None]:
    """``(logits (B, C), penultimate features (B, D) or None)``; features only when asked,
    from models exposing ``features(x)`` and ``head``."""
    if not with_features:
        return model(x), None
    h = model.features(x)
    return model.head(h), h


def record_clean(model: nn.Module, loader: BatchSource, recorder: Recorder, idx: Tensor, y: Tensor) -> None:
    """Record the un-augmented view of batch ``idx`` with the model in eval mode, no grad."""
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        logits, h = forward(model, loader.clean(idx).to(device, non_blocking=True), "grand" in recorder.signals)
        recorder.update(idx, logits, y, features=h)
    model.train()


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[Tensor]) -> tuple[Tensor, Tensor]:
    """Eval-mode ``(logits (N, C) float32, features (N, D) float32)`` over input batches, on the CPU.

    The model must expose ``features(x)`` (penultimate activations) and ``head``.
    """
    was_training = model.training
    model.eval()
    logits, feats = [], []
    device = next(model.parameters()).device
    try:
        for x in batches:
            f = model.features(x.to(device))
            feats.append(f.float().cpu())
            logits.append(model.head(f).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(feats)
