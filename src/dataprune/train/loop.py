"""The reference training loop: SGD + warm-up/cosine, optionally recording dynamics.

Read top to bottom: build the optimizer and schedule, then per epoch iterate batches of
``(x, y, idx)``, step, record, and log.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..errors import DataPruneError
from ..record import Recorder

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


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with Nesterov momentum (no weight decay on biases and norms), and a per-step
    schedule: linear warm-up for ``warmup_epochs`` (factor (s+1)/(W+1) at step s < W), then
    cosine decay towards zero over the remaining T - W steps (torch's LinearLR, then
    CosineAnnealingLR, chained by SequentialLR)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(total - 1, int(cfg.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler
    if warmup == 0:
        return optimizer, sched.CosineAnnealingLR(optimizer, T_max=total)
    ramp = sched.LinearLR(optimizer, start_factor=1 / (warmup + 1), total_iters=warmup)
    cosine = sched.CosineAnnealingLR(optimizer, T_max=total - warmup)
    return optimizer, sched.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) for repeatable initialisation."""
    torch.manual_seed(seed)


def train(model: nn.Module, loader: BatchSource, cfg: TrainConfig, *,
          recorder: Recorder | None = None, record_view: str = "clean",
          optimizer: torch.optim.Optimizer | None = None,
          scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
          start_epoch: int = 0, progress: bool = False,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
          grad_sync: Callable[[nn.Module], None] | None = None) -> list[dict[str, float]]:
    """Train ``model`` for epochs ``start_epoch..cfg.epochs-1``; returns one log row per epoch.

    With a ``recorder``, every batch is recorded: ``record_view="train"`` records the
    training forward's logits (free); ``"clean"`` runs an extra no-grad forward of the
    un-augmented batch with the model in eval mode (as the paper's official code).
    ``on_epoch_end(epoch, row)`` runs after the recorder has written the epoch.
    ``progress`` shows a per-epoch progress bar when stderr is a terminal.
    ``grad_sync(model)`` runs between backward and step (data-parallel gradient averaging).
    """
    if record_view not in VIEWS:
        raise DataPruneError(f"record_view={record_view!r}; expected one of {VIEWS}")
    if optimizer is None or scheduler is None:
        optimizer, scheduler = make_optimizer(model, cfg, len(loader))
    device = next(model.parameters()).device
    with_features = recorder is not None and "grand" in recorder.signals
    history = []
    for epoch in range(start_epoch, cfg.epochs):
        loader.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for x, y, idx in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                              disable=None if progress else True):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if recorder is not None and record_view == "clean":
                record_clean(model, loader, recorder, idx, y)
            logits, h = forward(model, x, with_features)
            loss = nn.functional.cross_entropy(logits, y)
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
            seen += len(y)
        if recorder is not None:
            recorder.end_epoch()
        row = {"epoch": epoch, "loss": loss_sum.item() / max(seen, 1),
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
