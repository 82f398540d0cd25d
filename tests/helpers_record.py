"""Shared checks for the integration tests: a plain Recorder replaying the batches each rank
fed its recorder (saved as OUT/batches_rank<r>.pt), compared byte for byte with a store."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import dataprune as dp


def replay(out: Path, ranks: int, num_samples: int, num_classes: int, epochs: int,
           **kwargs) -> Path:
    """out/ref: a plain Recorder fed every rank's recorded (epoch, idx, logits, y) batches,
    epoch by epoch in rank order (last wins)."""
    seen = [torch.load(out / f"batches_rank{r}.pt") for r in range(ranks)]
    rec = dp.Recorder(num_samples, out / "ref", num_classes, epochs=epochs, **kwargs)
    for epoch in range(epochs):
        for batches in seen:
            for e, idx, logits, y in batches:
                if e == epoch:
                    rec.update(idx, logits, y)
        rec.end_epoch()
    return out / "ref"


def assert_same_store(a: Path, b: Path) -> None:
    """Stores ``a`` and ``b`` hold the same files, byte for byte, and the same fingerprint."""
    files = sorted(f.name for f in a.glob("*.npy"))
    assert files == sorted(f.name for f in b.glob("*.npy"))
    for f in files:
        assert np.load(a / f).tobytes() == np.load(b / f).tobytes(), f
    assert dp.Dynamics.open(a).fingerprint == dp.Dynamics.open(b).fingerprint


def finish_ddp() -> None:
    """End a test app's torch.distributed group, if any, before the process exits (as
    tests/_ddp_worker.py does): exiting with a gloo group alive can abort the process
    ("terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
