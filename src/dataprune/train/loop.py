"""The reference training loop: SGD + warm-up/cosine (:mod:`.schedule`), optionally recording dynamics.

Read top to bottom: build the optimizer and schedule, then per epoch iterate batches of
``(x, y, idx)``, step, record, and log.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..errors import DataPruneError
from ..record import Recorder
from .device import PRECISIONS, autocast, check_precision, grad_scaler, unwrap
from .order import check_seed
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
    precision: str = "fp32"
    """fp32, or bf16 / fp16 mixed precision (``torch.autocast``; fp16 on CUDA only)"""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise DataPruneError(f"epochs={self.epochs}; expected at least 1")
        if self.batch_size < 1:
            raise DataPruneError(f"batch_size={self.batch_size}; expected at least 1")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (
                math.isfinite(self.lr) and self.lr > 0):
            raise DataPruneError(f"lr={self.lr}; expected a finite, positive learning rate")
        check_seed(self.seed)
        if self.precision not in PRECISIONS:
            raise DataPruneError(f"precision={self.precision!r}; expected one of {', '.join(PRECISIONS)}")

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


#: optimizer steps between checks that the loss is finite (each check waits for the device)
FINITE_CHECK_EVERY = 50


def train(model: nn.Module, loader: BatchSource, cfg: TrainConfig, *,
          recorder: Recorder | None = None, record_view: str = "clean",
          optimizer: torch.optim.Optimizer | None = None,
          scheduler: torch.optim.lr_scheduler.LRScheduler | ProgressSchedule | None = None,
          start_epoch: int = 0, stop_epoch: int | None = None, progress: bool = False,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
          sample_loss: SampleLoss | None = None, record_every: float = 1.0,
          scaler: torch.amp.GradScaler | None = None) -> list[dict[str, float]]:
    """Train ``model`` for epochs ``start_epoch..stop_epoch-1`` (default ``cfg.epochs``);
    returns one log row per epoch (``samples``: samples forwarded and backwarded in it).

    ``model`` may be wrapped in ``DistributedDataParallel`` (gradients are then averaged
    over ranks by the wrapper) or ``torch.compile``; it trains on its parameters' device,
    the forward pass and loss under ``torch.autocast`` in ``cfg.precision`` (fp16 with a
    ``GradScaler``, ``scaler`` or a new one).
    With a ``recorder``, every batch is recorded: ``record_view="train"`` records the
    training forward's logits (free); ``"clean"`` runs an extra no-grad forward of the
    un-augmented batch with the model in eval mode (as the paper's official code), on the
    unwrapped model. ``on_epoch_end(epoch, row)`` runs after the recorder has written the epoch.
    ``progress`` shows a per-epoch progress bar when stderr is a terminal.
    ``sample_loss`` replaces the mean cross-entropy (e.g. InfoBatch's re-weighted loss).
    ``record_every`` = 1/m ends m recordings per epoch (each holds the samples of its part
    of the epoch; unseen samples are NaN there). A loss that becomes non-finite (checked
    every ``FINITE_CHECK_EVERY`` steps and before each recording ends) stops training with
    a one-line :class:`DataPruneError` naming the epoch and step.
    """
    if record_view not in VIEWS:
        raise DataPruneError(f"record_view={record_view!r}; expected one of {VIEWS}")
    if optimizer is None or scheduler is None:
        optimizer, scheduler = make_optimizer(model, cfg, len(loader))
    device = next(model.parameters()).device
    check_precision(cfg.precision, device)
    scaler = scaler if scaler is not None else grad_scaler(device, cfg.precision)
    net = unwrap(model)
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
        for x, y, idx in progress_bar(loader, f"epoch {epoch + 1}/{cfg.epochs}", progress):
            x, y = to_device(x, device), y.to(device, non_blocking=True)
            if recorder is not None and record_view == "clean":
                record_clean(net, loader, recorder, idx, y, cfg.precision)
            with autocast(device, cfg.precision):
                logits, h = forward(model, x, with_features)
                loss = nn.functional.cross_entropy(logits, y) if sample_loss is None else sample_loss(logits, y, idx)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if recorder is not None and record_view == "train":
                recorder.update(idx, logits, y, features=h)  # bf16/fp16 too: it computes in float32
            loss_sum += loss.detach().float() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen, batch = seen + len(y), batch + 1
            if batch < len(loader) and (batch % FINITE_CHECK_EVERY == 0 or batch in ends):
                check_finite(loss_sum, epoch, batch, cfg)  # the last batch: checked once, below
            if batch in ends and batch < len(loader):
                recorder.end_epoch()
        check_finite(loss_sum, epoch, batch, cfg)
        if recorder is not None:
            recorder.end_epoch()
        row = {"epoch": epoch, "loss": loss_sum.item() / max(seen, 1), "samples": seen,
               "train_accuracy": correct.item() / max(seen, 1),
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        history.append(row)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    return history


def check_finite(loss_sum: Tensor, epoch: int, step: int, cfg: TrainConfig) -> None:
    """Stop with a one-line error when the summed loss of the epoch so far is not finite
    (under torch.distributed: on any rank, so that every rank stops at the same step)."""
    total = loss_sum.detach().clone()
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(total)
    if not bool(torch.isfinite(total)):
        raise DataPruneError(f"training diverged: the loss became {total.item()} in epoch {epoch + 1} by step "
                             f"{step}; lower the learning rate (--lr {cfg.lr:g})")


def progress_bar(loader: Iterable[Any], desc: str, enabled: bool) -> Iterable[Any]:
    """``loader`` with a tqdm bar on stderr when ``enabled`` and stderr is a terminal (never
    in logs or CI). A terminal that reports a size of 0 x 0 (a pseudo-terminal whose window
    size was never set, as ``script`` or ``pty.fork`` make) gets 80 x 24: tqdm draws nothing
    there otherwise."""
    if not enabled or not sys.stderr.isatty():
        return loader
    try:
        columns, lines = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        columns, lines = 0, 0
    return tqdm(loader, desc=desc, leave=False, ncols=columns or 80, nrows=lines or 24, file=sys.stderr)


def to_device(x: Tensor, device: torch.device) -> Tensor:
    """A batch of inputs on ``device`` (non-blocking from pinned memory; images in
    ``channels_last`` on CUDA, the layout :func:`~dataprune.train.device.prepare_model`
    gives conv nets)."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def forward(model: nn.Module, x: Tensor, with_features: bool) -> tuple[Tensor, Tensor | None]:
    """``(logits (B, C), penultimate features (B, D) or None)``. Features only when asked:
    the input of the model's ``head``, caught by a forward hook, so that the forward pass
    runs through ``model`` itself (a DistributedDataParallel wrapper must see it to average
    the gradients)."""
    if not with_features:
        return model(x), None
    caught: list[Tensor] = []
    handle = unwrap(model).head.register_forward_hook(lambda _m, args, _out: caught.append(args[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, caught[-1]


def record_clean(net: nn.Module, loader: BatchSource, recorder: Recorder, idx: Tensor, y: Tensor,
                 precision: str = "fp32") -> None:
    """Record the un-augmented view of batch ``idx`` with ``net`` (the unwrapped model) in
    eval mode, no grad, under autocast in ``precision`` (the recorder computes in float32)."""
    device = next(net.parameters()).device
    net.eval()
    with torch.no_grad(), autocast(device, precision):
        logits, h = forward(net, to_device(loader.clean(idx), device), "grand" in recorder.signals)
    recorder.update(idx, logits, y, features=h)
    net.train()


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
