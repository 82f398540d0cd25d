"""Worker for tests/test_prune_at_ddp.py: one gloo rank iterating a dp.PruneAt sampler.

Run as ``python _ddp_prune_at_worker.py OUT`` with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
set. Writes OUT/rank<r>.json: its indices in epoch 0 (full set) and epoch 1 (after rank 0's
keep was broadcast by ``set_keep``; other ranks pass None) and the keep it received.
"""
import json
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch

import dataprune as dp

torch.distributed.init_process_group("gloo", timeout=timedelta(seconds=60))
rank = torch.distributed.get_rank()
sampler = dp.PruneAt(21, prune_at=1, seed=5)
sampler.set_epoch(0)
epoch0 = list(sampler)
sampler.set_keep(np.array([3, 9, 4, 17, 20]) if rank == 0 else None)
sampler.set_epoch(1)
(Path(sys.argv[1]) / f"rank{rank}.json").write_text(json.dumps(
    {"epoch0": epoch0, "epoch1": list(sampler), "keep": sampler.keep.tolist(), "len": len(sampler)}))
torch.distributed.destroy_process_group()
