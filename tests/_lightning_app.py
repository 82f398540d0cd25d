"""A tiny Lightning app for tests/test_integration_lightning.py; also run as a script
(``python _lightning_app.py OUT DEVICES``) so Lightning's DDP launcher can re-run it per rank.

Each rank saves the (epoch, idx, logits, y) it recorded to OUT/batches_rank<r>.pt, so the
test can replay them into a plain Recorder and compare the stores byte for byte.
"""
from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

import dataprune as dp
from dataprune.integrations.lightning import RecordDynamics
from helpers_record import finish_ddp  # the script's folder is on sys.path

N, D, C = 23, 6, 3  # N odd: DistributedSampler pads one duplicate sample on 2 ranks


class TinyModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(D, C)
        self.seen = []

    def training_step(self, batch, batch_idx):
        x, y, idx = batch
        logits = self.net(x)
        self.seen.append((self.current_epoch, idx.clone(), logits.detach().clone(), y.clone()))
        return {"loss": torch.nn.functional.cross_entropy(logits, y), "logits": logits}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def dataset() -> dp.WithIndex:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(N) % C
    x = torch.randn(N, D, generator=g) + 2 * torch.nn.functional.one_hot(y, D).float()
    return dp.WithIndex(TensorDataset(x, y))


def fit(out: Path, devices: int = 1, epochs: int = 2, ckpt_path: str | None = None,
        callbacks: tuple = (), **record_kwargs) -> TinyModule:
    """Train TinyModule for ``epochs`` recording into out/dynamics; returns the module."""
    torch.manual_seed(0)
    model = TinyModule()
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=devices,
        strategy="ddp" if devices > 1 else "auto", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=bool(callbacks), default_root_dir=out,
        callbacks=[RecordDynamics(out / "dynamics", num_samples=N, num_classes=C, **record_kwargs),
                   *callbacks])
    trainer.fit(model, DataLoader(dataset(), batch_size=4, shuffle=True), ckpt_path=ckpt_path)
    torch.save(model.seen, out / f"batches_rank{trainer.global_rank}.pt")
    return model


if __name__ == "__main__":
    fit(Path(sys.argv[1]), devices=int(sys.argv[2]))
    finish_ddp()
