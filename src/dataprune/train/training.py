"""One training, one epoch at a time: the single path that ``dataprune record``, ``train``
(plain, ``--prune-at``, ``--dynamic``, ``--budget``) and the benches train through, so the
same configuration and seed give the same model whichever command runs it.

Order of construction (what the RNG sees): seed, model, batches, optimizer + schedule.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Iterator

import numpy as np
import torch

from .data import ImageData
from .device import check_precision, grad_scaler, prepare_model, resolve_device
from .imagefolder import FolderData
from .loop import SampleLoss, TrainConfig, make_optimizer, seed_everything, train
from .models import build_model
from .schedule import budget_steps

Data = ImageData | FolderData
"""In-memory IDX data or a streamed image folder."""


def run_loader(data: Data, cfg: TrainConfig, model_name: str, indices: np.ndarray | None = None, *,
               record_view: str | None = None, rank: int = 0, world: int = 1) -> Any:
    """The training batches of a run (augmented unless the model is ``mlp``): in memory, or
    decoded by workers for an image folder (with the clean view when ``record_view="clean"``);
    this rank's shard when ``world`` > 1."""
    from .data import InMemoryLoader
    augment = model_name != "mlp"
    if isinstance(data, FolderData):
        return data.loader(indices, batch_size=cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed,
                           with_clean=record_view == "clean", rank=rank, world_size=world)
    kw = dict(mean=data.mean, std=data.std, indices=indices, batch_size=cfg.batch_size, shuffle=True,
              augment=augment, seed=cfg.seed, rank=rank, world_size=world)
    return InMemoryLoader(data.train_x, data.train_y, **kw)


class FirstBatches:
    """The first ``count`` batches of each epoch of ``loader`` (a budget run's last, partial
    epoch): the same order as the full epoch, cut short."""

    def __init__(self, loader: Any, count: int) -> None:
        self.loader, self.count = loader, count

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.loader), self.count)

    def __len__(self) -> int:
        return self.count

    def clean(self, idx: torch.Tensor) -> torch.Tensor:
        return self.loader.clean(idx)


def summed_over_ranks(row: dict[str, float], device: torch.device) -> dict[str, float]:
    """An epoch's log ``row`` of one rank made the row of all ranks (one ``all_reduce``):
    ``samples`` summed (padding duplicates of the last shard included: they were trained on),
    ``loss`` and ``train_accuracy`` averaged over all those samples."""
    n = float(row["samples"])
    total = torch.tensor([row["loss"] * n, row["train_accuracy"] * n, n], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    loss, correct, samples = total.tolist()
    return {**row, "samples": int(samples), "loss": loss / max(samples, 1),
            "train_accuracy": correct / max(samples, 1)}


class Training:
    """Model, batches, optimizer and the warm-up/cosine schedule of one run.

    ``subset`` (sample indices) trains on those only; ``budget`` B (0 < B <= 1) trains on all
    data for ``round(B x cfg.epochs x steps per epoch)`` steps with the schedule compressed
    into them (:attr:`epochs` = the epochs that takes; the last may be partial). Counters:
    ``sample_passes``, ``optimizer_steps``, ``samples_per_epoch``.

    Trains on ``device`` (default: CUDA when available, else the CPU) in ``cfg.precision``;
    :attr:`net` is the model (checkpoint and evaluate it), :attr:`trained` the module that
    trains it: ``net`` itself, or wrapped in ``DistributedDataParallel`` (``world`` > 1)
    and/or ``torch.compile`` (``compile``).
    """

    def __init__(self, data: Data, model: str, cfg: TrainConfig, *, subset: np.ndarray | None = None,
                 budget: float | None = None, record_view: str | None = None, rank: int = 0,
                 world: int = 1, device: str | torch.device | None = None, compile: bool = False) -> None:
        self.cfg, self.model_name, self.world = cfg, model, world
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        check_precision(cfg.precision, self.device)
        seed_everything(cfg.seed)
        self.net = build_model(model, data.num_classes, data.in_channels, data.image_size)
        self.trained = prepare_model(self.net, self.device, world_size=world, compile=compile)
        self.scaler = grad_scaler(self.device, cfg.precision)  # one loss scale for the run (fp16 on CUDA)
        self.loader = run_loader(data, cfg, model, subset, record_view=record_view, rank=rank, world=world)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = (None if budget is None else
                            budget_steps(budget, cfg.epochs, self.steps_per_epoch))
        self.optimizer, self.schedule = make_optimizer(self.net, cfg, self.steps_per_epoch,
                                                       steps=self.total_steps)
        self.epochs = (cfg.epochs if self.total_steps is None else
                       math.ceil(self.total_steps / self.steps_per_epoch))
        self.sample_passes, self.optimizer_steps, self.samples_per_epoch = 0, 0, []

    def epoch(self, epoch: int, *, indices: np.ndarray | torch.Tensor | None = None, recorder: Any = None,
              record_view: str = "train", record_every: float = 1.0, sample_loss: SampleLoss | None = None,
              progress: bool = False) -> dict[str, float]:
        """Train epoch ``epoch`` on ``indices`` (default: as the epoch before; at first the run's
        training set); returns its
        log row (``samples``: samples forwarded and backwarded)."""
        if indices is not None:
            self.loader.indices = indices if isinstance(indices, torch.Tensor) else torch.from_numpy(indices)
        batches = len(self.loader)
        self.schedule.start_epoch(epoch, batches)
        loader, steps = self.loader, batches
        if self.total_steps is not None:
            steps = min(batches, self.total_steps - epoch * self.steps_per_epoch)
            loader = FirstBatches(self.loader, steps) if steps < batches else loader
        row = train(self.trained, loader, self.cfg, recorder=recorder, record_view=record_view,
                    optimizer=self.optimizer, scheduler=self.schedule, start_epoch=epoch, stop_epoch=epoch + 1,
                    progress=progress, sample_loss=sample_loss, record_every=record_every,
                    scaler=self.scaler)[0]
        if self.world > 1:
            row = summed_over_ranks(row, self.device)
        self.sample_passes += int(row["samples"])
        self.optimizer_steps += steps
        self.samples_per_epoch.append(int(row["samples"]))
        return row

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "sample_passes": self.sample_passes,
                "optimizer_steps": self.optimizer_steps, "samples_per_epoch": list(self.samples_per_epoch)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.sample_passes, self.optimizer_steps = int(state["sample_passes"]), int(state["optimizer_steps"])
        self.samples_per_epoch = [int(x) for x in state["samples_per_epoch"]]

    def metrics(self, data: Data, row: dict[str, float], acc: float, split: str) -> dict[str, Any]:
        """What every ``train`` reports, from the last epoch's ``row`` and the test accuracy."""
        n, cfg = len(data.train_y), self.cfg
        return {"test_accuracy": acc, "eval_split": split, "image_size": data.image_size,
                "train_samples": int(self.samples_per_epoch[-1]), "num_samples": n, "epochs": cfg.epochs,
                "sample_passes": self.sample_passes, "full_equivalent": self.sample_passes / (cfg.epochs * n),
                "optimizer_steps": self.optimizer_steps, "samples_per_epoch": list(self.samples_per_epoch),
                "dataset": data.name, "model": self.model_name, "seed": cfg.seed,
                "final_train_loss": row["loss"], "train": cfg.to_dict()}

