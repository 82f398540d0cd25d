"""dp.PruneAt under torch.distributed (gloo, 2 CPU processes): same seeded order on every
rank, disjoint shards like DistributedSampler, rank 0's keep broadcast to the others."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import dataprune as dp
from test_distributed import free_port

WORKER = Path(__file__).with_name("_ddp_prune_at_worker.py")


def test_prune_at_sampler_under_ddp(tmp_path):
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                                   os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(tmp_path)], env={**env, "RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    try:
        logs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), logs
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    single = dp.PruneAt(21, prune_at=1, seed=5, rank=0, world_size=1)
    single.set_epoch(0)
    order = list(single)
    padded = order + order[:1]  # 21 -> 22 entries, like DistributedSampler
    assert r0["epoch0"] == padded[0::2] and r1["epoch0"] == padded[1::2]
    assert r0["keep"] == r1["keep"] == [3, 4, 9, 17, 20] and r0["len"] == r1["len"] == 3
    assert sorted(set(r0["epoch1"]) | set(r1["epoch1"])) == [3, 4, 9, 17, 20]
    assert not np.intersect1d(r0["epoch1"][:2], r1["epoch1"][:2]).size
