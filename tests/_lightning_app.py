"""A tiny Lightning app for tests/test_integration_lightning.py; also run as a script
(``python _lightning_app.py OUT DEVICES [prune]``) so Lightning's DDP launcher can re-run it
per rank.

Each rank saves the (epoch, idx, logits, y) of its training batches to OUT/batches_rank<r>.pt,
so the test can replay them into a plain Recorder and compare the stores byte for byte; a
pruning run also saves the callback's keep to OUT/keep_rank<r>.pt.
"""
from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import dataprune as dp
from dataprune.integrations.lightning import PruneAtCallback, RecordDynamics
from helpers_record import finish_ddp  # the script's folder is on sys.path

N, D, C = 23, 6, 3  # N odd: DistributedSampler pads one duplicate sample on 2 ranks
PRUNE = dict(method="el2n", prune_ratio=0.3)  # what prune_fit scores at T


def unpack(batch):
    """(x, y, idx) of the batch forms RecordDynamics reads (see dict_dataset)."""
    if isinstance(batch, dict):
        return batch["input"], batch["label"], batch["i"]
    if isinstance(batch[0], dict):
        return batch[0]["input"], batch[0]["target"], batch[1]
    if len(batch) == 2:  # no target (RecordDynamics refuses it): train towards class 0
        return batch[0], torch.zeros_like(batch[1]), batch[1]
    return batch[0], batch[1], batch[-1]


class TinyModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(D, C)
        self.seen = []
        self.validated = []  # epochs in which a validation batch ran

    def training_step(self, batch, batch_idx):
        x, y, idx = unpack(batch)
        logits = self.net(x)
        self.seen.append((self.current_epoch, idx.clone(), logits.detach().clone(), y.clone()))
        return {"loss": torch.nn.functional.cross_entropy(logits, y), "logits": logits}

    def validation_step(self, batch, batch_idx):
        self.validated.append(self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def base() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(N) % C
    x = torch.randn(N, D, generator=g) + 2 * torch.nn.functional.one_hot(y, D).float()
    return TensorDataset(x, y)


def dataset() -> dp.WithIndex:
    return dp.WithIndex(base())


class DictItems(Dataset):
    """Items as dicts: {"input", "label", "i"} (``keys="own"``) or {"input", "target"}."""

    def __init__(self, keys: str):
        self.base, self.keys = base(), keys

    def __len__(self):
        return N

    def __getitem__(self, i):
        x, y = self.base[i]
        return {"input": x, "label": y, "i": i} if self.keys == "own" else {"input": x, "target": y}


def trainer(out: Path, devices: int, epochs: int, callbacks: list, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=devices,
        strategy="ddp" if devices > 1 else "auto", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=len(callbacks) > 1, default_root_dir=out,
        callbacks=callbacks, **kwargs)


def fit(out: Path, devices: int = 1, epochs: int = 2, ckpt_path: str | None = None,
        callbacks: tuple = (), data: Dataset | None = None, **record_kwargs) -> TinyModule:
    """Train TinyModule for ``epochs`` recording into out/dynamics; returns the module."""
    torch.manual_seed(0)
    model = TinyModule()
    record_kwargs = {"num_samples": N, "num_classes": C, **record_kwargs}
    t = trainer(out, devices, epochs, [RecordDynamics(out=out / "dynamics", **record_kwargs), *callbacks])
    t.fit(model, DataLoader(dataset() if data is None else data, batch_size=4, shuffle=True),
          ckpt_path=ckpt_path)
    torch.save(model.seen, out / f"batches_rank{t.global_rank}.pt")
    return model


def prune_fit(out: Path, devices: int = 1, epochs: int = 4, prune_at: int = 2, ckpt_path: str | None = None,
              callbacks: tuple = (), trainer_kwargs: dict | None = None,
              **prune_kwargs) -> tuple[PruneAtCallback, TinyModule]:
    """Train TinyModule for ``epochs`` (validating every epoch), pruned after ``prune_at`` by
    PruneAtCallback recording into out/dynamics; returns the callback and the module."""
    torch.manual_seed(0)
    model = TinyModule()
    sampler = dp.PruneAt(N, prune_at=prune_at, seed=3)
    prune = PruneAtCallback(sampler, out / "dynamics", **{**PRUNE, **prune_kwargs})
    trainer_kwargs = {"reload_dataloaders_every_n_epochs": 1, "use_distributed_sampler": False,
                      **(trainer_kwargs or {})}
    t = trainer(out, devices, epochs, [prune, *callbacks], **trainer_kwargs)
    t.fit(model, DataLoader(dataset(), batch_size=4, sampler=sampler),
          DataLoader(dataset(), batch_size=8), ckpt_path=ckpt_path)
    torch.save(model.seen, out / f"batches_rank{t.global_rank}.pt")
    torch.save(torch.from_numpy(prune.keep), out / f"keep_rank{t.global_rank}.pt")
    return prune, model


if __name__ == "__main__":
    out, devices = Path(sys.argv[1]), int(sys.argv[2])
    if sys.argv[3:] == ["prune"]:
        prune_fit(out, devices=devices)
    else:
        fit(out, devices=devices)
    finish_ddp()
