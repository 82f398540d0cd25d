"""Worker for tests/test_distributed.py: one rank of a gloo process group on CPU.

Run as ``python _ddp_worker.py OUT`` with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set
(as torchrun would). Records every scenario of :data:`SCENARIOS` into OUT/<name>; the test
compares each store with a single-process recording of :func:`stream`.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch

C = 5
#: name -> (N, batch size, epochs, drop_last (sampler and loader), rank-dependent logits, keep_history)
SCENARIOS = {
    "n7": (7, 2, 3, False, False, "full"),
    "n7_drop": (7, 2, 3, True, False, "full"),
    "n7_rankdep": (7, 2, 3, False, True, "full"),
    "n1000": (1000, 64, 3, False, False, "full"),
    "n1000_drop": (1000, 64, 3, True, False, "full"),
    "n1000_none": (1000, 64, 5, True, False, "window"),
}


def stream(name: str, rank: int, world: int, epoch: int):
    """(indices, logits, targets) batches rank ``rank`` sees in ``epoch`` of scenario ``name``."""
    from torch.utils.data import DistributedSampler
    n, batch, _, drop, rank_dep, _ = SCENARIOS[name]
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                                 seed=3, drop_last=drop)
    sampler.set_epoch(epoch)
    order = torch.tensor(list(sampler))
    table = torch.randn(n, C, generator=torch.Generator().manual_seed(100 + epoch))
    feats = torch.randn(n, 4, generator=torch.Generator().manual_seed(200 + epoch))
    for idx in order.split(batch):
        if drop and len(idx) < batch:
            continue  # DataLoader(drop_last=True)
        logits = table[idx].clone()
        if rank_dep:  # raise the labelled class's logit on higher ranks: prob differs by rank
            logits[torch.arange(len(idx)), idx % C] += 0.7 * rank
        yield idx, logits, idx % C, feats[idx]


def recorder_kwargs(name: str) -> dict:
    n, _, epochs, _, _, keep = SCENARIOS[name]
    import dataprune as dp
    signals = (["prob"] if keep == "window" else
               list(dp.record.ALL_SIGNALS) + list(dp.record.EXTRA_SIGNALS))
    return dict(num_samples=n, num_classes=C, epochs=epochs, signals=signals,
                keep_history=keep, window=2)


def main(out: Path) -> None:
    import dataprune as dp
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world,
                                         timeout=timedelta(seconds=60))
    warned: list[str] = []  # the Recorder's "never seen" warnings (each rank sees a shard)
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warned.append(record.getMessage())
    logging.getLogger("dataprune.record").addHandler(handler)
    coverage = {}
    for name, (_, _, epochs, _, _, _) in SCENARIOS.items():
        rec = dp.Recorder(out=out / name, **recorder_kwargs(name))
        for epoch in range(epochs):
            for idx, logits, y, h in stream(name, rank, world, epoch):
                rec.update(idx, logits, y, features=h)
            assert rec.end_epoch() == epoch + 1
        rec.close()
        coverage[name], warned[:] = list(warned), []
    if rank == 0:
        (out / "coverage_warnings.json").write_text(json.dumps(coverage))
    else:
        assert not any(coverage.values()), coverage  # only rank 0 reports
    # Non-zero ranks must not touch the disk: rank 1 points at a path nobody creates.
    probe = out / ("probe" if rank == 0 else "probe_rank1_must_not_exist")
    rec = dp.Recorder(7, probe, C)
    rec.update(torch.tensor([rank]), torch.zeros(1, C), torch.tensor([0]))
    rec.end_epoch()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main(Path(sys.argv[1]))
